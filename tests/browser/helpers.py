"""What the browser tests share: the practice's page on another origin, a tab, the widget's
frame and what the host page's scripts can see of it."""

from __future__ import annotations

import contextlib
import itertools
import json
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Frame, Page, Request

from loadtests.harness import lifted_limits_env
from lookup_index.generator import Probe
from lookup_index.normalise import nir_matches_birth_date, normalise_nir, parse_birth_date
from tests.support.browser import artifact_dir, static_server
from tests.support.servers import ApiServer, api_server, free_port

CHECK = "/v1/check"
TIMEOUT_MS = 10_000

HOST_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Another practice (other origin)</title>
<link rel="icon" href="data:,"></head>
<body><main><h1>Another practice</h1>
<p>Its page carries a third-party script that would love to read the form.</p>
<div data-selfcheck data-lang="{lang}"></div>
<script src="{api}/embed.js" async></script>
<script src="spy.js"></script>
</main></body></html>
"""
# What an analytics or chat script on the practice's page could try.
SPY_JS = """
window.spyMessages = [];
window.addEventListener("message", (e) => {
  window.spyMessages.push({origin: e.origin, data: e.data});
});
window.spyRead = () => {
  const frame = document.querySelector("iframe");
  const out = {contentDocument: frame.contentDocument === null ? "null" : "readable"};
  try {
    out.value = frame.contentWindow.document.getElementById("nir").value;
    out.read = "allowed";
  } catch (error) {
    out.read = error.name;
  }
  return out;
};
"""


def catalogue(lang: str) -> dict[str, Any]:
    text = (resources.files("app") / "static" / "widget" / "i18n" / f"{lang}.json").read_text()
    result: dict[str, Any] = json.loads(text)
    return result


FR, EN = catalogue("fr"), catalogue("en")


def compact(nir: str) -> str:
    """Without any space-like or dash-like separator (en dash, NBSP...) or dot."""
    kept = (c for c in nir if not c.isspace() and c not in ".\u2212")
    return "".join(c for c in kept if unicodedata.category(c) not in ("Zs", "Pd", "Cf")).upper()


def mismatched(probe: Probe) -> bool:
    return not nir_matches_birth_date(normalise_nir(probe.nir), parse_birth_date(probe.birth_date))


def hint_free(probe: Probe) -> bool:
    """No hint shows while it is typed: the frame's height then depends only on the answer.
    (The mismatch hint changes the height while the patient types.)"""
    return not mismatched(probe)


@dataclass
class Site:
    """The API (which serves the demo page and the widget) and a practice on another origin."""

    api: ApiServer
    host_origin: str
    foreign_origin: str


@dataclass
class Tab:
    page: Page
    requests: list[Request] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def checks(self) -> list[Request]:
        return [r for r in self.requests if r.url.endswith(CHECK)]


@contextlib.contextmanager
def serve_site(root: Path, env: Mapping[str, str]) -> Iterator[Site]:
    """The API with ``env`` (index and key) on a free port, a practice's page on another
    origin allowed to frame it, and a foreign origin that is not."""
    host_dir = root / "host"
    host_dir.mkdir()
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    for lang in ("fr", "en"):
        (host_dir / f"host-{lang}.html").write_text(HOST_PAGE.format(lang=lang, api=api_url))
    # A page that states no language at all: the widget follows the browser.
    nolang = HOST_PAGE.replace('<html lang="en">', "<html>").replace(' data-lang="{lang}"', "")
    (host_dir / "host-nolang.html").write_text(nolang.format(api=api_url))
    (host_dir / "spy.js").write_text(SPY_JS)
    with (
        static_server(host_dir, root / "host.log") as host,
        static_server(host_dir, root / "foreign.log") as foreign,
    ):
        full_env = {
            "SELFCHECK_ALLOW_TEST_PROFILE": "true",
            "SELFCHECK_RESPONSE_FLOOR_MS": "0",
            "SELFCHECK_HASH_CONCURRENCY": "1",
            "SELFCHECK_POW_PROFILE": "test",
            # The demo page (same origin) and the practice's site may frame it; `foreign` may not.
            "SELFCHECK_FRAME_ANCESTORS": f"'self' {host.origin}",
            **lifted_limits_env(),
            **env,
        }
        with api_server(full_env, root / "api.log", port=api_port) as api:
            yield Site(api, host.origin, foreign.origin)


def open_tab(browser: Any, locale: str = "fr-FR", width: int = 900) -> Tab:
    context = browser.new_context(locale=locale, viewport={"width": width, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    tab = Tab(context.new_page())
    tab.page.on("request", lambda request: tab.requests.append(request))
    tab.page.on(
        "console", lambda m: tab.console_errors.append(m.text) if m.type == "error" else None
    )
    return tab


_shot_numbers = itertools.count(1)


def screenshot(page: Page, name: str) -> None:
    path = artifact_dir("browser") / f"{next(_shot_numbers):02d}-{name}.png"
    page.screenshot(path=path, full_page=True)


def widget(page: Page) -> Frame:
    """The iframe's frame, once the widget has applied its catalogue."""
    handle = page.locator("iframe").element_handle()
    frame = handle.content_frame() if handle else None
    assert frame is not None
    frame.locator("#nir").wait_for(state="visible")
    return frame


def fill(frame: Frame, nir: str, birth_date: str, last_name: str) -> None:
    year, month, day = birth_date.split("-")
    frame.locator("#nir").fill(nir)
    frame.locator("#day").fill(day)
    frame.locator("#month").fill(month)
    frame.locator("#year").fill(year)
    frame.locator("#name").fill(last_name)


def submit(frame: Frame, probe: Probe) -> None:
    fill(frame, probe.nir, probe.birth_date, probe.last_name)
    frame.locator("#submit").click()


def active_id(frame: Frame) -> str:
    return str(frame.evaluate("document.activeElement ? document.activeElement.id : ''"))


def iframe_height(page: Page) -> float:
    return float(page.locator("iframe").evaluate("f => f.getBoundingClientRect().height"))


def content_height(frame: Frame) -> float:
    return float(frame.evaluate("document.body.getBoundingClientRect().height"))


def expect_fits(page: Page, frame: Frame) -> None:
    """The iframe becomes as tall as the widget's content: no inner scrollbar, no blank space."""
    for _ in range(100):
        if abs(iframe_height(page) - content_height(frame)) <= 1:
            return
        page.wait_for_timeout(50)
    pytest.fail(f"iframe {iframe_height(page)} px, content {content_height(frame)} px")


CATALOGUES = {"fr": FR, "en": EN}


@dataclass(frozen=True)
class Seen:
    """All a script on the host page can see of the widget once an answer is shown."""

    height: float
    title: str | None
    scroll: float
    messages: tuple[str, ...]


def settled_messages(page: Page) -> list[Any]:
    """The host's record of the widget's messages, once no new one came for a while."""
    count = -1
    for _ in range(40):
        messages: list[Any] = page.evaluate("window.spyMessages")
        if len(messages) == count:
            return messages
        count = len(messages)
        page.wait_for_timeout(150)
    pytest.fail(f"the widget keeps posting messages: {messages[-5:]}")


def seen_by_the_host(page: Page) -> Seen:
    messages = settled_messages(page)
    assert {m["origin"] for m in messages} == {
        page.locator("iframe").evaluate("f => new URL(f.src).origin")
    }
    return Seen(
        height=iframe_height(page),
        title=page.locator("iframe").get_attribute("title"),
        scroll=float(page.evaluate("window.scrollY")),
        messages=tuple(json.dumps(m, sort_keys=True) for m in messages),
    )


def expect_answer_in_view(page: Page, frame: Frame) -> None:
    """The host page scrolled to the answer's heading (once the frame had its new height)."""
    viewport = page.viewport_size
    assert viewport is not None
    for _ in range(40):
        top = iframe_top(page) + frame.locator("#answer-title").evaluate(
            "h => h.getBoundingClientRect().top"
        )
        if 0 <= top < viewport["height"] / 2:
            return
        page.wait_for_timeout(50)
    pytest.fail(f"the answer's heading is at {top} px in a {viewport['height']} px view")


def iframe_top(page: Page) -> float:
    return float(page.locator("iframe").evaluate("f => f.getBoundingClientRect().top"))


def expect_iframe_height(page: Page, height: float) -> None:
    for _ in range(100):
        if iframe_height(page) == height:
            settled_messages(page)
            assert iframe_height(page) == height
            return
        page.wait_for_timeout(50)
    pytest.fail(f"iframe {iframe_height(page)} px, expected {height} px")
