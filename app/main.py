"""The app factory: ``uvicorn --factory app.main:create_app``. Nothing runs at import time."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from app.admission.gate import NetworkGate
from app.errors import register_error_handlers
from app.logging_setup import RequestLog, silence_access_log
from app.metrics import Metrics
from app.middleware.body_limit import BodyLimitMiddleware
from app.middleware.catch_all import CatchAllMiddleware
from app.middleware.observe import ObserveMiddleware
from app.middleware.response_floor import FloorStats, ResponseFloorMiddleware
from app.middleware.security_headers import SecurityHeadersMiddleware
from app.middleware.uniform_headers import UniformHeadersMiddleware
from app.network_id import NetworkIds
from app.padded_json import PaddedJSON
from app.rate_limit import RateLimits
from app.routes.challenge import build_challenge_router
from app.routes.check import build_check_router
from app.routes.health import build_health_router
from app.routes.paths import CHECK_PATH
from app.routes.widget import build_widget_router
from app.settings import Settings
from app.state import OneLineStartupErrors, StartupMessage, make_lifespan


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    silence_access_log()
    renderer = PaddedJSON(settings.response_size)
    limits = RateLimits(settings)
    startup_message = StartupMessage()
    metrics = Metrics()
    metrics.set_ceilings(settings.global_limit, settings.global_limit_proven)
    floor_stats = FloorStats(on_held=metrics.floor_held.inc, on_overrun=metrics.floor_overruns.inc)
    routes: set[str] = set()
    request_log = RequestLog(
        settings.log_format,
        NetworkIds(None if limits.per_process else getattr(limits.storage, "storage", None)),
        settings.trusted_proxies,
    )
    # Outermost first. CORS sits outside the floor, the catch-all and the body cap so that
    # every answer of /v1/check (413 and 500 included) carries the same CORS headers.
    middleware = [
        Middleware(ObserveMiddleware, metrics=metrics, routes=routes, log=request_log),
        Middleware(OneLineStartupErrors, message=startup_message),
        Middleware(UniformHeadersMiddleware, paths=[CHECK_PATH]),
        Middleware(SecurityHeadersMiddleware),
    ]
    if settings.allowed_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.allowed_origins,
                allow_methods=["POST"],
                allow_headers=["content-type"],
                allow_credentials=False,
                max_age=600,
            )
        )
    middleware += [
        Middleware(
            ResponseFloorMiddleware,
            floor_seconds=settings.response_floor_ms / 1000,
            paths=[CHECK_PATH],
            stats=floor_stats,
            max_body_seconds=settings.body_timeout_s,
        ),
        Middleware(CatchAllMiddleware, renderer=renderer),
        Middleware(
            BodyLimitMiddleware,
            max_bytes=settings.max_body_bytes,
            timeout_seconds=settings.body_timeout_s,
        ),
        # A client its unproven network tiers refused gets the 429 here, before FastAPI.
        Middleware(
            NetworkGate,
            refusals=limits.refused_networks,
            renderer=renderer,
            trusted_proxies=settings.trusted_proxies,
        ),
    ]
    app = FastAPI(
        title="Patient breach self-check",
        version="1",
        lifespan=make_lifespan(settings, limits, renderer, startup_message, metrics),
        middleware=middleware,
        docs_url="/docs" if settings.docs_enabled else None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
        # `/v1/check/` would get a 307 echoing the Host header, unfloored and uncounted:
        # a near-path is a constant 404 like any unknown path.
        redirect_slashes=False,
    )
    routers = [
        build_check_router(settings),
        build_challenge_router(settings),
        build_health_router(settings.health_allowed, settings.trusted_proxies),
        build_widget_router(settings),
    ]
    for router in routers:
        app.include_router(router)
        # The metrics' and the log's route label: these templates, anything else "other".
        routes.update(path for route in router.routes if (path := getattr(route, "path", "")))
    register_error_handlers(app, renderer)
    app.state.floor_stats = floor_stats
    app.state.metrics = metrics
    return app
