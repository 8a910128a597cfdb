"""GET /v1/challenge: one ALTCHA v2 challenge from the pre-computed pool."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from app.admission.buckets import Subject
from app.admission.desk import PoolEmpty
from app.check_service import CheckService
from app.client_address import client_ip
from app.errors import NotFound, Unavailable
from app.routes.paths import CHALLENGE_PATH
from app.settings import Settings


def build_challenge_router(settings: Settings) -> APIRouter:
    router = APIRouter()

    # Synchronous: the per-network limit is a blocking store call.
    def challenge(request: Request) -> Response:
        service: CheckService = request.state.service
        if not service.desk.enabled:
            raise NotFound
        # slowapi's per-network issuance limit (app/admission/issuance.py): 429 past it.
        service.desk.issuance.check(request)
        subject = Subject(client_ip(request.scope, settings.trusted_proxies))
        try:
            issued = service.desk.issue(subject)
        except PoolEmpty:
            raise Unavailable from None
        # Each challenge is good for one check: no cache may keep or share it.
        return JSONResponse(issued, headers={"cache-control": "no-store"})

    router.add_api_route(
        CHALLENGE_PATH,
        challenge,
        methods=["GET"],
        response_model=None,
        summary="An ALTCHA v2 (Argon2id) proof-of-work challenge for the next check",
    )
    return router
