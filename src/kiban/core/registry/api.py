"""JSON twins of the registry pages.

The registry search (``GET /api/v1/organizations``) is the platform's busiest public read, and
its answer depends only on the query string and the registry snapshot in memory. Each answer is
kept (``SearchAnswers``, per process, per snapshot, bounded in bytes) with an ETag, and
``RegistrySearchFastPath``, a middleware innermost in the stack, sends a kept answer again
without routing, dependencies or validation: what the route would send, byte for byte, with
the outer middlewares' headers (request id, security headers) added as for any response. A new
snapshot (a merger recorded, the registry seeded) starts a new set of answers; the route fills
it, so an answer is only ever the route's own.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Receive, Scope, Send

from kiban.core.registry import service
from kiban.core.registry.models import OrgType
from kiban.core.registry.schemas import OrganizationDetail, OrganizationPage
from kiban.kit.db import get_session
from kiban.kit.paging import MAX_OFFSET
from kiban.core.identity.dependencies import PUBLIC

router = APIRouter(prefix="/api/v1", tags=["ベース・レジストリ（団体）"], dependencies=[PUBLIC])

# The service checks these and says in Japanese what is wrong; the document states the same
# bounds (json_schema_extra, so that the service's words, not pydantic's, reach the caller).
PREFECTURE_PATTERN = "^(0[1-9]|[1-3][0-9]|4[0-7])?$"  # empty: every prefecture (the list page's form sends it)

DbSession = Annotated[AsyncSession, Depends(get_session)]


@router.get("/organizations", summary="団体の一覧と検索", response_model=OrganizationPage,
            responses={304: {"description": "If-None-Match の ETag から変わっていない（本文なし）"}})
async def list_organizations(
    request: Request,
    session: DbSession,
    q: Annotated[str | None, Query(description="名称・読み（ひらがな・カタカナ・半角カナ可、異体字やケ/ヶ/がは同一視）、行政区名、または団体コード（6桁・5桁・先頭の数桁）")] = None,
    prefecture: Annotated[str | None, Query(description="2桁の都道府県番号（01〜47）",
                                            json_schema_extra={"pattern": PREFECTURE_PATTERN})] = None,
    type: Annotated[list[str] | None, Query(description="団体の種類（複数指定可）",  # noqa: A002 - public API name
                                            json_schema_extra={"items": {"enum": [t.value for t in OrgType]}})] = None,
    include_retired: Annotated[bool, Query(description="合併などで廃止された団体も含める")] = False,
    include_wards: Annotated[bool, Query(description="政令市の行政区も含める")] = False,
    sort: Annotated[str, Query(description="relevance（名称・コードが一致、先頭が一致、途中に含む の順。既定）/ code / population_desc / population_asc / kana",
                               json_schema_extra={"enum": list(service.SORTS)})] = "relevance",
    limit: Annotated[int, Query(description="1〜2000", json_schema_extra={"minimum": 1, "maximum": service.MAX_LIMIT})] = 50,
    offset: Annotated[int, Query(description="何件目から（0 から）", json_schema_extra={"minimum": 0, "maximum": MAX_OFFSET})] = 0,
) -> Response:
    query = service.OrganizationQuery(q=q, prefecture=prefecture, types=tuple(type or ()),
                                      include_retired=include_retired, include_wards=include_wards,
                                      sort=sort, limit=limit, offset=offset).validated()
    # The snapshot's own per-item JSON, joined (service.list_organizations_json, with the snapshot
    # kept: the answer is remembered for it)
    snapshot = await request.app.state.registry_cache.get(session)
    answer = answers_of(request.app).put(snapshot, request.scope.get("query_string", b""),
                                         snapshot.search_json(**query.criteria()))
    if answer.matches(request.headers.get("if-none-match")):
        return Response(status_code=304, headers=answer.validators)
    return Response(answer.body, headers=answer.validators, media_type="application/json")


@router.get("/organizations/{code}", summary="団体の詳細", response_model=OrganizationDetail,
            responses={404: {"description": "登録されていないコード"},
                       422: {"description": "桁数・検査数字・文字種の誤り（理由を日本語で返します）"}})
async def get_organization(code: str, session: DbSession) -> OrganizationDetail:
    return await service.get_detail(session, code)


# -- answers kept for the registry search -----------------------------------------------------------------

#: How long a browser or a shared cache may reuse an answer without asking. The registry changes
#: only when it is seeded or a merger is recorded; a minute of delay on those is harmless.
CACHE_CONTROL = "public, max-age=60"
MAX_KEPT_BYTES = 8 * 1024 * 1024  # per process, all answers together
MAX_ANSWER_BYTES = 256 * 1024  # larger answers (limit up to 2,000) are not kept


class Answer:
    __slots__ = ("body", "etag", "validators", "raw_headers", "not_modified_headers")

    def __init__(self, body: bytes, revision: object) -> None:
        self.body = body
        self.etag = f'"r{revision}-{zlib.crc32(body):08x}-{len(body):x}"'
        self.validators = {"etag": self.etag, "cache-control": CACHE_CONTROL}
        # The headers the route's Response carries, made by the same class, so that a kept answer
        # sent by the fast path cannot differ from the route's
        self.raw_headers = Response(body, headers=self.validators, media_type="application/json").raw_headers
        self.not_modified_headers = Response(status_code=304, headers=self.validators).raw_headers

    def matches(self, if_none_match: str | None) -> bool:
        """RFC 9110 If-None-Match: ``*`` or any listed tag, compared weakly."""
        if not if_none_match:
            return False
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return "*" in tags or self.etag in tags


class SearchAnswers:
    """The search answers sent for one snapshot, least recently used dropped first."""

    def __init__(self, max_bytes: int = MAX_KEPT_BYTES) -> None:
        self.max_bytes = max_bytes
        self._snapshot: object | None = None
        self._answers: OrderedDict[bytes, Answer] = OrderedDict()
        self._bytes = 0

    def get(self, snapshot: object, query_string: bytes) -> Answer | None:
        if snapshot is not self._snapshot:
            return None
        answer = self._answers.get(query_string)
        if answer is not None:
            self._answers.move_to_end(query_string)
        return answer

    def put(self, snapshot, query_string: bytes, body: bytes) -> Answer:
        if snapshot is not self._snapshot:
            self._snapshot, self._answers, self._bytes = snapshot, OrderedDict(), 0
        kept = self._answers.get(query_string)
        if kept is not None and kept.body == body:
            return kept
        answer = Answer(body, getattr(snapshot, "revision", 0))
        if len(body) <= MAX_ANSWER_BYTES:
            if kept is not None:
                self._bytes -= len(kept.body)
            self._answers[query_string] = answer
            self._bytes += len(body)
            while self._bytes > self.max_bytes:
                _, dropped = self._answers.popitem(last=False)
                self._bytes -= len(dropped.body)
        return answer


def answers_of(app) -> SearchAnswers:
    answers = getattr(app.state, "registry_search_answers", None)
    if answers is None:
        answers = app.state.registry_search_answers = SearchAnswers()
    return answers


SEARCH_PATH = "/api/v1/organizations"


class RegistrySearchFastPath:
    """Sends a kept registry search answer for a GET the route has answered before, from the
    snapshot in memory now. Anything else (another path, no kept answer, a cache that checks the
    database on every call, as in tests) goes to the route. Install innermost."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != SEARCH_PATH or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        state = getattr(scope.get("app"), "state", None)
        cache = getattr(state, "registry_cache", None)
        answers = getattr(state, "registry_search_answers", None)
        if answers is None or cache is None or cache.ttl <= 0 or cache.latest is None:
            await self.app(scope, receive, send)
            return
        # Served from memory as the route serves it (stale while a background check runs).
        snapshot = await cache.get(None)
        answer = answers.get(snapshot, scope.get("query_string", b""))
        if answer is None:
            await self.app(scope, receive, send)
            return
        if answer.matches(_header(scope, b"if-none-match")):
            await send({"type": "http.response.start", "status": 304, "headers": list(answer.not_modified_headers)})
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.start", "status": 200, "headers": list(answer.raw_headers)})
        await send({"type": "http.response.body", "body": answer.body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return value.decode("latin-1")
    return None
