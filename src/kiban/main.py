"""create_app(): the one ASGI application, mounting each part's API and web routers."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import State
from sqlalchemy.ext.asyncio import AsyncEngine

import kiban
from kiban.core.audit import api as audit_api
from kiban.core.audit import web as audit_web
from kiban.core.exports import api as exports_api
from kiban.core.exports import web as exports_web
from kiban.core.identity import api_admin as identity_admin_api
from kiban.core.identity import api_resident as resident_api
from kiban.core.identity import api as identity_api
from kiban.core.identity import web as identity_web
from kiban.core.identity import web_admin as staff_admin_web
from kiban.core.identity import web_business as business_web
from kiban.core.identity import web_resident as resident_web
from kiban.core.notify import api as notify_api
from kiban.core.notify import web as notify_web
from kiban.core.registry import api as registry_api
from kiban.core.registry import web as registry_web
from kiban.core.identity.apikeys import RateLimiter
from kiban.core.metering import api as metering_api
from kiban.core.metering import web as metering_web
from kiban.core.identity.dependencies import PUBLIC
from kiban.core.identity.idle_clock import IdleClock
from kiban.core.registry.snapshot import RegistryCache
from kiban.core.tenancy import api as tenancy_api
from kiban.core.tenancy import safety  # noqa: F401 - installs the tenant safety net
from kiban.core.tenancy import web as tenancy_web
from kiban.kit import health
from kiban.kit.db import ReadRetryMiddleware, create_engine, deferred, dispose_side_engine, make_sessionmaker
from kiban.kit.csrf import CsrfCookieMiddleware
from kiban.kit.errors import install_handlers
from kiban.kit import openapi as openapi_contract
from kiban.kit import templating
from kiban.kit.requestid import RequestIdMiddleware, configure_logging
from kiban.kit.security import BodyLimitMiddleware, NulGuardMiddleware, SecurityHeadersMiddleware, policy_with_scripts, script_hash
from kiban.kit.settings import Settings, get_settings
from kiban.kit.shared import open_shared_state
from kiban.web import pages
from kiban.web.viewer import load_viewer, show_viewer_on_unrouted_pages
from kiban.modules.catalog import api as catalog_api
from kiban.modules.catalog import web as catalog_web
from kiban.modules.costs import api as costs_api
from kiban.modules.costs import api_tenant as costs_tenant_api
from kiban.modules.costs import web as costs_web
from kiban.modules.disaster import api as disaster_api
from kiban.modules.disaster import web as disaster_web
from kiban.modules.reservations import api as reservations_api
from kiban.modules.reservations import web as reservations_web
from kiban.modules.forms import api as forms_api
from kiban.modules.forms import web as forms_web
from kiban.modules.childcare import routes as childcare_routes
from kiban.modules.surveys import routes as surveys_routes
from kiban.modules.governance import routes as governance_routes
from kiban.modules.indicators import routes as indicators_routes
from kiban.modules.opinions import routes as opinions_routes

STATIC_DIR = Path(__file__).resolve().parent / "web" / "static"

API_DESCRIPTION = """
国・地方デジタル共通基盤（Kiban）の API です。すべての画面に同じ内容の API があります。

- 誤った入力には `application/problem+json`（RFC 9457）で、日本語の説明を返します。
- 自治体（テナント）ごとのデータは `/api/v1/t/{lg_code}/...` の下にあります。
"""


async def _warm_registry(app: FastAPI) -> None:
    """Load the registry snapshot before the first request; a database that is not ready yet
    is reported by /readyz, not by a failed start."""
    try:
        async with app.state.sessionmaker() as session:
            await app.state.registry_cache.revalidate(session)
    except Exception:  # noqa: BLE001
        logging.getLogger("kiban").warning("registry not loaded at start-up (kiban db upgrade / kiban seed?)")


async def _warm_matchers(app: FastAPI) -> None:
    """Build the open disasters' 名寄せ matchers in the background (KIBAN_MATCHER_WARM)."""
    from kiban.modules.disaster import matching

    try:
        started = time.monotonic()
        # It only reads: on SQLite a deferred transaction reads a snapshot beside the writers. With
        # the write lock (every transaction's default) the build of a million registrations held
        # it for a minute, and every sign-in meanwhile failed after the 30 s busy timeout.
        built = await matching.warm(make_sessionmaker(deferred(app.state.engine)))
        if built:
            logging.getLogger("kiban").info("名寄せ: %d 件の災害の照合の準備ができました（%.1f 秒）", built,
                                            time.monotonic() - started)
    except asyncio.CancelledError:
        raise
    except Exception:  # noqa: BLE001 - the first record page builds it instead
        logging.getLogger("kiban").warning("名寄せの照合の準備に失敗しました（最初に記録を開いたときに準備します）",
                                           exc_info=True)


@asynccontextmanager
async def _lifespan(app: FastAPI):
    from kiban.core.jobs.runner import Runner

    settings: Settings = app.state.settings
    # FastAPI builds each route's handler on its first match (a mistyped URL: every route's).
    # Building them all here, while the worker is not yet serving, spares its first requests a
    # stall of a second or more; the OpenAPI document is built from the same handlers.
    app.openapi()
    templating.compile_all()
    await _warm_registry(app)
    # What start-up made (routes, templates, the registry) lives as long as the process: out of
    # the cyclic collector's sight, each full collection has only the requests' objects to walk.
    gc.collect()
    gc.freeze()
    # Background jobs (core/jobs): a serve process claims and runs its share, unless they run in
    # a process of their own (KIBAN_JOBS_WORKERS=0: ``kiban serve`` starts one, see cli.py); the
    # tickers run here either way (they look after this process's memory).
    kinds = [k.strip() for k in settings.jobs_kinds.split(",") if k.strip()] or None
    app.state.job_runner = Runner(app.state.sessionmaker, concurrency=settings.jobs_workers, kinds=kinds,
                                  pause_ratio=settings.effective_jobs_pause_ratio)
    app.state.job_runner.start()
    warming = asyncio.create_task(_warm_matchers(app)) if settings.matcher_warm else None
    yield
    if warming is not None and not warming.done():
        warming.cancel()
    await app.state.job_runner.stop()
    await app.state.idle_clock.settle()
    await app.state.shared.close()
    await dispose_side_engine(app.state.engine)
    if app.state.own_engine:
        await app.state.engine.dispose()


def configure(app: FastAPI, settings: Settings, *, engine: AsyncEngine | None = None) -> None:
    """Give ``app`` its settings, database and per-process state, all new: ``create_app`` calls it
    once; the test suite calls it again before each test on one app per run, whose routes'
    handlers are then built once rather than per test (each test starts from new state, the
    middleware rebuilt and no dependency overridden)."""
    app.state = State()
    app.state.settings = settings
    app.state.own_engine = engine is None
    app.state.engine = engine or create_engine(settings.database_url, echo=settings.sql_echo,
                                               pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow)
    app.state.sessionmaker = make_sessionmaker(app.state.engine)
    app.state.idle_clock = IdleClock(app.state.engine)
    # Counters every worker process shares (sign-in throttle, API key rate limits): kit/shared.py.
    app.state.shared = open_shared_state(settings)
    app.state.rate_limiter = RateLimiter(app.state.shared)
    app.state.registry_cache = RegistryCache(app.state.sessionmaker, ttl=settings.registry_cache_seconds)
    app.middleware_stack = None
    app.dependency_overrides.clear()


def create_app(settings: Settings | None = None, *, engine: AsyncEngine | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    app = FastAPI(
        title="Kiban 国・地方デジタル共通基盤 API",
        version=kiban.__version__,
        description=API_DESCRIPTION,
        openapi_url="/api/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=_lifespan,
        # Every page's header says who is signed in; loaded once, on the request's own session.
        dependencies=[Depends(load_viewer)],
    )
    configure(app, settings, engine=engine)
    # Innermost: GET/HEAD on SQLite read a WAL snapshot without the write lock, and are run once
    # more with it if they must write while another connection writes (kit/db.py).
    app.add_middleware(ReadRetryMiddleware)
    app.add_middleware(registry_api.RegistrySearchFastPath)  # kept search answers skip routing
    app.add_middleware(CsrfCookieMiddleware)
    app.add_middleware(NulGuardMiddleware)
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestIdMiddleware)
    install_handlers(app)
    openapi_contract.install(app)
    show_viewer_on_unrouted_pages(app)

    @app.get("/api/v1/docs", include_in_schema=False, dependencies=[PUBLIC])
    async def api_docs() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url="/api/v1/openapi.json",
            title="Kiban API ドキュメント",
            swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )
        # Swagger UI starts from one inline script: allow exactly that script, by its hash
        inline = re.findall(r"<script>(.*?)</script>", page.body.decode(), flags=re.S)
        page.headers["content-security-policy"] = policy_with_scripts(*(script_hash(s) for s in inline))
        return page

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(health.router, dependencies=[PUBLIC])
    app.include_router(registry_api.router)
    app.include_router(tenancy_api.router)
    app.include_router(identity_api.router)
    app.include_router(identity_admin_api.router)
    app.include_router(resident_api.router)
    app.include_router(audit_api.router)
    app.include_router(pages.router)
    app.include_router(registry_web.router)
    app.include_router(tenancy_web.router)
    app.include_router(identity_web.router)
    app.include_router(resident_web.router)
    app.include_router(business_web.router)
    app.include_router(staff_admin_web.router)
    app.include_router(audit_web.router)
    app.include_router(exports_api.router)
    app.include_router(exports_web.router)
    app.include_router(catalog_api.public)
    app.include_router(catalog_api.tenant)
    app.include_router(costs_api.router)
    app.include_router(costs_tenant_api.public)
    app.include_router(costs_tenant_api.tenant)
    app.include_router(catalog_web.router)
    app.include_router(costs_web.router)
    app.include_router(disaster_api.router)
    app.include_router(disaster_web.router)
    app.include_router(notify_api.router)
    app.include_router(notify_api.me_router)
    app.include_router(notify_web.router)
    app.include_router(metering_api.router)
    app.include_router(metering_web.router)
    app.include_router(forms_api.public)
    app.include_router(forms_api.tenant)
    app.include_router(forms_web.router)
    app.include_router(reservations_api.tenant_router)
    app.include_router(reservations_api.public_router)
    app.include_router(reservations_web.router)
    for module in (childcare_routes, surveys_routes, governance_routes, indicators_routes, opinions_routes):
        for router in module.ROUTERS:
            app.include_router(router)
    return app
