"""The floor for cached public reads: a bare Starlette app that answers each registry search
with bytes Kiban already produced for it (read from the JSON file named by
``KIBAN_FLOOR_BODIES``: {"<query string>": "<body>"}), same content type, no middleware, no
database. Served by the same uvicorn, with the same options, as Kiban in the same run, so that
the ratio of their throughputs says what Kiban's request path costs on top of the server.

    KIBAN_FLOOR_BODIES=bodies.json .venv/bin/python -m uvicorn _floor_app:app --app-dir bench
"""

from __future__ import annotations

import json
import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

with open(os.environ["KIBAN_FLOOR_BODIES"], encoding="utf-8") as handle:
    BODIES = {query.encode("latin-1"): body.encode("utf-8") for query, body in json.load(handle).items()}
MISSING = b'{"items":[],"total":0,"limit":50,"offset":0}'


async def organizations(request: Request) -> Response:
    return Response(BODIES.get(request.scope["query_string"], MISSING), media_type="application/json")


app = Starlette(routes=[Route("/api/v1/organizations", organizations)])
