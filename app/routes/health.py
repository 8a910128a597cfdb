"""Liveness and readiness; neither reveals counts, paths or versions.

``/healthz`` is public. ``/readyz`` says when the rate-limit store is down, which
is when an attacker would strike: it answers only to the load balancer and the
operators (``SELFCHECK_HEALTH_ALLOWED`` and the trusted proxies), judged on the
client address after the X-Forwarded-For walk, so a request relayed by the
proxy for an Internet client is refused like one arriving directly.
"""

from collections.abc import Sequence

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from app.client_address import IPNetwork, client_ip
from app.errors import NotFound
from app.rate_limit import RateLimits


def build_health_router(
    allowed: Sequence[IPNetwork] = (), trusted_proxies: Sequence[IPNetwork] = ()
) -> APIRouter:
    router = APIRouter()
    readers = [*allowed, *trusted_proxies]

    @router.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "alive"}, headers={"cache-control": "no-store"})

    @router.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        address = client_ip(request.scope, trusted_proxies)
        if address is None or not any(
            address.version == net.version and address in net for net in readers
        ):
            raise NotFound  # the constant 404 of any unknown path
        limits: RateLimits | None = getattr(request.state, "limits", None)
        service = getattr(request.state, "service", None)
        # The store's ping is blocking (bounded by its socket timeout): keep it off the loop.
        store_ok = limits is not None and await run_in_threadpool(limits.storage_ready)
        ready = service is not None and store_ok
        body = {
            "status": "ready" if ready else "not_ready",
            "index": "loaded" if service is not None else "missing",
            # Which set is loaded (build ids), so an operator sees a reload take effect.
            "index_id": service.indexes.id if service is not None else None,
            "rate_limit_store": "ok" if store_ok else "unavailable",
            "rate_limits": "per-process" if limits is not None and limits.per_process else "shared",
        }
        return JSONResponse(
            body, status_code=200 if ready else 503, headers={"cache-control": "no-store"}
        )

    return router
