"""Liveness and readiness for load balancers and operators."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

router = APIRouter(tags=["運用"])


@router.get("/healthz", summary="生存確認（プロセスが応答するか）")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="準備完了確認（データベースに接続でき、移行が済んでいるか）")
async def readyz(request: Request) -> JSONResponse:
    started = time.perf_counter()
    try:
        async with request.app.state.engine.connect() as connection:
            await connection.execution_options(sqlite_deferred=True)
            revision = (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    except Exception as exc:  # noqa: BLE001 - readiness reports any failure as not ready
        return JSONResponse(
            {"status": "unavailable", "database": "error",
             "detail": f"データベースに接続できないか、移行（kiban db upgrade）が済んでいません: {type(exc).__name__}"},
            status_code=503,
        )
    return JSONResponse({"status": "ok", "database": "ok", "revision": revision,
                           "latency_ms": round((time.perf_counter() - started) * 1000, 2)})
