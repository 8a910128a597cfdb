"""Liveness and readiness; neither reveals counts, paths or versions."""

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from app.rate_limit import RateLimits


def build_health_router() -> APIRouter:
    router = APIRouter()

    @router.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "alive"}, headers={"cache-control": "no-store"})

    @router.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        limits: RateLimits | None = getattr(request.state, "limits", None)
        service = getattr(request.state, "service", None)
        # The store's ping is blocking (bounded by its socket timeout): keep it off the loop.
        store_ok = limits is not None and await run_in_threadpool(limits.storage_ready)
        ready = service is not None and store_ok
        body = {
            "status": "ready" if ready else "not_ready",
            "index": "loaded" if service is not None else "missing",
            "rate_limit_store": "ok" if store_ok else "unavailable",
            "rate_limits": "per-process" if limits is not None and limits.per_process else "shared",
        }
        return JSONResponse(
            body, status_code=200 if ready else 503, headers={"cache-control": "no-store"}
        )

    return router
