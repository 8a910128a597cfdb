"""The widget's routes in-process: headers, CSP, catalogues, weight. The browser tests
(tests/browser/) prove the same pages work in a real Chromium."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from importlib import resources
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from app.settings import Settings
from lookup_index.categories import CATEGORIES

STATIC = resources.files("app") / "static"
#: The issue's budget: html + js + css + one catalogue, uncompressed.
WEIGHT_BUDGET = 50_000
WIDGET_FILES = ("/widget", "/widget/widget.js", "/widget/widget.css")
PAGES = ("/", "/widget", "/privacy")
ALL_ROUTES = (
    *PAGES,
    "/embed.js",
    "/widget/widget.js",
    "/widget/widget.css",
    "/widget/i18n/fr.json",
    "/widget/i18n/en.json",
    "/demo/practice.css",
    "/privacy/privacy.css",
    "/favicon.svg",
)


def directives(csp: str) -> dict[str, list[str]]:
    parsed: dict[str, list[str]] = {}
    for part in csp.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


class Tags(HTMLParser):
    """Every start tag with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.script_text.append(data)


def parse(html: str) -> Tags:
    tags = Tags()
    tags.feed(html)
    return tags


def leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix, node


def catalogue(lang: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((STATIC / "widget" / "i18n" / f"{lang}.json").read_text())
    return result


async def test_every_widget_route_answers_with_its_type_and_no_cookie(
    client: httpx.AsyncClient,
) -> None:
    expected_types = {
        ".js": "text/javascript",
        ".css": "text/css",
        ".json": "application/json",
        ".svg": "image/svg+xml",
    }
    for path in ALL_ROUTES:
        response = await client.get(path)
        assert response.status_code == 200, path
        kind = next((t for ext, t in expected_types.items() if path.endswith(ext)), "text/html")
        assert response.headers["content-type"].startswith(kind), path
        assert "set-cookie" not in response.headers, path
        assert response.headers["x-content-type-options"] == "nosniff"
        head = await client.head(path)
        assert head.status_code == 200, path
        assert head.content == b""


async def test_unknown_widget_paths_get_the_json_404(client: httpx.AsyncClient) -> None:
    for path in ("/widget/i18n/de.json", "/static/widget/widget.js", "/embed.js/x", "/privacy/x"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"] == "not_found"


async def test_widget_csp_is_strict_and_frame_ancestors_come_from_settings(
    app_factory: Callable[..., Any],
) -> None:
    _, http = await app_factory(frame_ancestors=["'self'", "https://practice.example"])
    async with http:
        response = await http.get("/widget")
    csp = directives(response.headers["content-security-policy"])
    assert csp["default-src"] == ["'none'"]
    # Exactly one relaxation: the proof-of-work worker compiles WebAssembly.
    assert csp["script-src"] == ["'self'", "'wasm-unsafe-eval'"]
    assert csp["style-src"] == ["'self'"]
    assert csp["connect-src"] == ["'self'"]
    assert csp["form-action"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'self'", "https://practice.example"]
    header = response.headers["content-security-policy"]
    assert "unsafe-inline" not in header
    assert "'unsafe-eval'" not in header
    assert "x-frame-options" not in response.headers  # would override frame-ancestors


async def test_widget_is_framable_by_self_only_by_default(client: httpx.AsyncClient) -> None:
    response = await client.get("/widget")
    assert directives(response.headers["content-security-policy"])["frame-ancestors"] == ["'self'"]


@pytest.mark.parametrize(
    "bad", ["https://a.example; script-src *", "'unsafe-inline'", "https://a.example,"]
)
def test_frame_ancestors_that_would_inject_a_directive_are_refused(
    make_settings: Callable[..., Settings], bad: str
) -> None:
    with pytest.raises(ValidationError, match="not a CSP source"):
        make_settings(frame_ancestors=[bad])


async def test_frame_ancestors_read_from_the_environment(
    app_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SELFCHECK_FRAME_ANCESTORS", "'self' https://a.example, http://127.0.0.1:81")
    _, http = await app_factory()
    async with http:
        response = await http.get("/widget")
    ancestors = directives(response.headers["content-security-policy"])["frame-ancestors"]
    assert ancestors == ["'self'", "https://a.example", "http://127.0.0.1:81"]


async def test_demo_page_frames_the_widget_through_embed_js_and_nothing_else(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/")
    csp = directives(response.headers["content-security-policy"])
    assert csp["frame-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    tags = parse(response.text)
    scripts = [attrs for tag, attrs in tags.tags if tag == "script"]
    assert scripts == [{"src": "/embed.js", "async": None}]
    assert "Cabinet médical des Tilleuls (fictif)" in response.text


async def test_other_responses_keep_the_strict_api_csp(client: httpx.AsyncClient) -> None:
    for path in ("/widget/widget.js", "/healthz"):
        csp = directives((await client.get(path)).headers["content-security-policy"])
        assert csp["default-src"] == ["'none'"]
        assert csp["frame-ancestors"] == ["'none'"]


async def test_embed_js_stays_loadable_from_other_origins(client: httpx.AsyncClient) -> None:
    response = await client.get("/embed.js", headers={"origin": "https://practice.example"})
    assert response.headers.get("cross-origin-resource-policy", "cross-origin") == "cross-origin"
    assert response.headers["access-control-allow-origin"] == "*"


async def test_assets_revalidate_with_an_etag(client: httpx.AsyncClient) -> None:
    first = await client.get("/widget/widget.js")
    assert first.headers["cache-control"] == "no-cache"
    again = await client.get("/widget/widget.js", headers={"if-none-match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    stale = await client.get("/widget/widget.js", headers={"if-none-match": '"other"'})
    assert stale.status_code == 200


async def test_widget_weight_is_under_budget_in_each_language(client: httpx.AsyncClient) -> None:
    base = 0
    for path in WIDGET_FILES:
        base += len((await client.get(path)).content)
    for lang in ("fr", "en"):
        total = base + len((await client.get(f"/widget/i18n/{lang}.json")).content)
        print(f"widget weight ({lang}): {total} bytes")
        assert total < WEIGHT_BUDGET, (lang, total)


async def test_widget_page_has_no_inline_script_style_or_handler(
    client: httpx.AsyncClient,
) -> None:
    for path in PAGES:
        html = (await client.get(path)).text
        tags = parse(html)
        assert tags.script_text == [], path
        for tag, attrs in tags.tags:
            assert "style" not in attrs, (path, tag)
            assert not [name for name in attrs if name.startswith("on")], (path, tag)
            if tag == "script":
                assert attrs["src"], path
        assert tag_names(tags) >= {"html", "head", "body"}


def tag_names(tags: Tags) -> set[str]:
    return {tag for tag, _ in tags.tags}


async def test_widget_files_load_nothing_from_elsewhere(client: httpx.AsyncClient) -> None:
    for path in (*WIDGET_FILES, "/embed.js"):
        text = (await client.get(path)).text
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text, re.IGNORECASE), path
        assert "@import" not in text
        assert "document.cookie" not in text
        assert "localStorage" not in text
        assert "sessionStorage" not in text


def test_catalogues_have_the_same_keys_and_no_empty_string() -> None:
    fr, en = (dict(leaves(catalogue(lang))) for lang in ("fr", "en"))
    assert fr.keys() == en.keys()
    for key, value in (*fr.items(), *en.items()):
        if isinstance(value, str):
            assert value.strip(), key
        else:
            assert isinstance(value, list), key
            assert value, key
            assert all(isinstance(item, str) and item.strip() for item in value), key
    assert catalogue("fr")["meta"]["lang"] == "fr"
    assert catalogue("en")["meta"]["lang"] == "en"


def test_every_category_has_a_label_and_meaning_in_each_language() -> None:
    for lang in ("fr", "en"):
        categories = catalogue(lang)["answer"]["categories"]
        assert set(categories) == set(CATEGORIES), lang
        for name, texts in categories.items():
            assert texts["label"], (lang, name)
            assert texts["meaning"], (lang, name)


def test_every_string_the_page_and_script_use_is_in_the_catalogue() -> None:
    keys = set(dict(leaves(catalogue("fr"))))
    html = (STATIC / "widget" / "widget.html").read_text()
    script = (STATIC / "widget" / "widget.js").read_text()
    used = set(re.findall(r'data-i18n="([\w.]+)"', html))
    used |= set(re.findall(r'\bt\("([\w.]+)"', script))
    used |= {f"errors.{code}" for code in re.findall(r'return "((?:nir|name)_\w+)"', script)}
    used |= {f"errors.{code}" for code in re.findall(r'code: "(date_\w+)"', script)}
    assert len(used) > 30  # the patterns above still find the texts
    missing = {key for key in used if key not in keys}
    assert not missing
    # Error codes the rules can return, each with a message.
    for code in ("nir_required", "nir_format", "nir_range", "nir_key", "date_invalid"):
        assert f"errors.{code}" in used


def test_widget_html_holds_no_text_of_its_own() -> None:
    """Every visible text comes from the catalogue: the page's text nodes are empty."""

    class Text(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.text: list[str] = []

        def handle_data(self, data: str) -> None:
            if data.strip():
                self.text.append(data.strip())

    parser = Text()
    html = (STATIC / "widget" / "widget.html").read_text()
    # The <noscript> text is the one exception: without JavaScript no catalogue is read.
    parser.feed(re.sub(r"<noscript>.*?</noscript>", "", html, flags=re.S))
    assert parser.text == []


def test_without_javascript_the_page_says_how_else_to_learn_the_status() -> None:
    html = (STATIC / "widget" / "widget.html").read_text()
    [noscript] = re.findall(r"<noscript>(.*?)</noscript>", html, flags=re.S)
    assert "courrier" in noscript
    assert "letter" in noscript


def test_the_vendored_worker_is_the_recorded_npm_file_with_its_licence() -> None:
    vendor = STATIC / "widget" / "vendor"
    record = json.loads((vendor / "VENDORED.json").read_text())
    assert record["package"] == "altcha"
    assert record["license"] == "MIT"
    worker = (vendor / record["file"]).read_bytes()
    assert hashlib.sha256(worker).hexdigest() == record["sha256"]
    assert "Permission is hereby granted" in (vendor / record["license_file"]).read_text()


async def test_widget_with_its_solver_is_under_150_kb_compressed(
    client: httpx.AsyncClient,
) -> None:
    paths = (*WIDGET_FILES, "/widget/i18n/fr.json", "/widget/vendor/altcha-argon2id.js")
    total = 0
    for path in paths:
        response = await client.get(path)
        assert response.status_code == 200, path
        total += len(gzip.compress(response.content, 9))
    print(f"widget with solver, gzip: {total} bytes")
    assert total < 150_000


async def test_the_worker_runs_under_the_widget_csp(client: httpx.AsyncClient) -> None:
    page = await client.get("/widget")
    worker = await client.get("/widget/vendor/altcha-argon2id.js")
    assert worker.headers["content-security-policy"] == page.headers["content-security-policy"]
