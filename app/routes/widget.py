"""The embeddable widget: the loader, the iframe page and its assets, the demo and privacy pages.

Everything is a small static file read once when the app is built, served with its
own Content-Security-Policy (the security-headers middleware only adds its strict API
default when a route sets none). The iframe page runs on this origin so the host
page's scripts can never read what a patient types; ``frame-ancestors`` says which
practice sites may embed it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from app.advice import LANGS
from app.content import Content, privacy_page, widget_catalogue
from app.settings import Settings

HTML = "text/html; charset=utf-8"
JS = "text/javascript; charset=utf-8"
CSS = "text/css; charset=utf-8"
JSON = "application/json; charset=utf-8"
SVG = "image/svg+xml"

#: The iframe page: only its own script, style, catalogue and API; framed only by listed sites.
#: 'wasm-unsafe-eval' lets the proof-of-work worker compile its Argon2id WebAssembly (and
#: nothing else: eval() and inline scripts stay forbidden).
WIDGET_CSP = (
    "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
    "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors {ancestors}"
)
#: The demo practice page and the privacy notice: own files only; the demo frames the widget.
DEMO_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "frame-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True, slots=True)
class Asset:
    """One static file, in memory, with the headers it is always served with."""

    body: bytes
    media_type: str
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:20] + '"'

    def response(self, request: Request) -> Response:
        headers = {
            # Revalidate every time: a practice must see a fix at once, and an ETag makes it cheap.
            "cache-control": "no-cache",
            "etag": self.etag,
            **self.headers,
        }
        if request.headers.get("if-none-match") == self.etag:
            return Response(status_code=304, headers=headers)
        return Response(self.body, media_type=self.media_type, headers=headers)


def _read(path: str) -> bytes:
    return (resources.files("app") / "static" / path).read_bytes()


def widget_assets(settings: Settings, content: Content | None = None) -> dict[str, Asset]:
    """URL path -> asset. Read when the app is built, never at import; the notice and the
    widget's operator line come from the operator's content (app/content.py)."""
    content = content or Content.load(settings.content_dir)
    # Settings checked each source (no separator can add a directive to the header).
    widget_csp = WIDGET_CSP.format(ancestors=" ".join(settings.frame_ancestors))
    assets = {
        "/": Asset(_read("demo/index.html"), HTML, {"content-security-policy": DEMO_CSP}),
        "/demo/practice.css": Asset(_read("demo/practice.css"), CSS),
        "/favicon.svg": Asset(_read("favicon.svg"), SVG),
        # Loaded by practice sites from their own origin: it must stay loadable cross-origin
        # (and fetchable with CORS, so a practice can pin it with Subresource Integrity).
        "/embed.js": Asset(
            _read("embed.js"),
            JS,
            {"cross-origin-resource-policy": "cross-origin", "access-control-allow-origin": "*"},
        ),
        "/widget": Asset(
            _read("widget/widget.html"), HTML, {"content-security-policy": widget_csp}
        ),
        "/widget/widget.js": Asset(_read("widget/widget.js"), JS),
        # A worker runs under the CSP of its own response: it needs 'wasm-unsafe-eval' too.
        "/widget/vendor/altcha-argon2id.js": Asset(
            _read("widget/vendor/altcha-argon2id.js"), JS, {"content-security-policy": widget_csp}
        ),
        "/widget/widget.css": Asset(_read("widget/widget.css"), CSS),
        "/privacy": Asset(
            privacy_page(_read("privacy/index.html"), content),
            HTML,
            {"content-security-policy": PAGE_CSP},
        ),
        "/privacy/privacy.css": Asset(_read("privacy/privacy.css"), CSS),
    }
    for lang in LANGS:
        catalogue = widget_catalogue(_read(f"widget/i18n/{lang}.json"), content, lang)
        assets[f"/widget/i18n/{lang}.json"] = Asset(catalogue, JSON)
    return assets


def _endpoint(asset: Asset) -> Callable[[Request], Awaitable[Response]]:
    async def serve(request: Request) -> Response:
        return asset.response(request)

    return serve


def build_widget_router(settings: Settings, content: Content | None = None) -> APIRouter:
    router = APIRouter()
    for path, asset in widget_assets(settings, content).items():
        # Starlette routes (GET also answers HEAD); static files stay out of the API schema.
        router.add_route(path, _endpoint(asset), methods=["GET"], include_in_schema=False)
    return router
