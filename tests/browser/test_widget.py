"""The widget end to end in Debian's headless Chromium, against a real `python -m app serve`.

One browser and one API server for the module (a second API with tight limits only for
the 429 test); a second static server on another port plays a practice's website, so
the cross-origin guarantees are exercised by the browser itself, including that what its
scripts can see of the widget (the iframe's height, the widget's messages, the scroll)
is the same whether the patient is affected or not. Screenshots of every state and the
axe reports go to test-artifacts/browser/.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Frame, Page, expect
from stdnum.fr import nir as stdnum_nir

from lookup_index.exceptions import InvalidIdentity
from lookup_index.generator import Probe
from lookup_index.normalise import (
    nir_matches_birth_date,
    normalise_last_name,
    normalise_nir,
    parse_birth_date,
)
from lookup_index.pepper import load_pepper
from tests.browser.helpers import (
    CATALOGUES,
    CHECK,
    EN,
    FR,
    Seen,
    Site,
    Tab,
    active_id,
    compact,
    expect_answer_in_view,
    expect_fits,
    expect_iframe_height,
    fill,
    hint_free,
    iframe_height,
    mismatched,
    open_tab,
    screenshot,
    seen_by_the_host,
    serve_site,
    submit,
    widget,
)
from tests.support.browser import artifact_dir
from tests.support.dataset import Dataset
from tests.support.pow import issuer
from tests.support.servers import api_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SERIOUS = ("serious", "critical")


@pytest.fixture(scope="module")
def site(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    env = {"SELFCHECK_INDEX_PATH": str(dataset.index), "SELFCHECK_KEY_FILE": str(dataset.key)}
    with serve_site(tmp_path_factory.mktemp("widget-site"), env) as served:
        for old in artifact_dir("browser").glob("*"):
            old.unlink()
        yield served


def axe_violations(target: Page | Frame, name: str, **options: Any) -> list[dict[str, Any]]:
    results = Axe().run(target, options={"resultTypes": ["violations"], **options})
    results.save_to_file(artifact_dir("browser") / f"axe-{name}.json", violations_only=True)
    return [v for v in results.response["violations"] if v["impact"] in SERIOUS]


@pytest.fixture(scope="module")
def affected(dataset: Dataset) -> Probe:
    """An affected probe with several categories and a NIR that shows no hint while typed."""
    candidates = [p for p in dataset.by_expected("affected") if hint_free(p)]
    return max(candidates, key=lambda p: (len(p.categories), p.nir))


@pytest.fixture(scope="module")
def not_found(dataset: Dataset) -> Probe:
    return next(p for p in dataset.by_expected("not_found") if hint_free(p))


#: A particle at the start of a recorded name (issue 14), as the generator writes them.
PARTICLE = re.compile(r"(?i)^(?:de la|de|du|des|le|la|d')[ ']?(?=\w)")


def test_an_unknown_birth_day_and_a_particle_name_typed_otherwise_are_affected(
    site: Site, tab: Tab, dataset: Dataset
) -> None:
    """Issue 14: "I don't know my day or month of birth" instead of an error, and a name
    with a particle typed glued: both find their record."""
    affected = dataset.by_expected("affected")
    unknown = next(p for p in affected if p.birth_date.endswith("-00"))
    particle = next(p for p in affected if PARTICLE.match(p.last_name))
    page = tab.page
    page.goto(site.api.url + "/")
    frame = widget(page)
    year, month, _ = unknown.birth_date.split("-")
    frame.locator("#nir").fill(unknown.nir)
    frame.locator("#year").fill(year)
    if month != "00":
        frame.locator("#month").fill(month)
    frame.locator("#name").fill(unknown.last_name)
    frame.locator("#submit").click()  # without the box ticked, a missing day is an error
    expect(frame.locator("#date-error")).to_have_text(FR["errors"]["date_day_missing"])
    expect(frame.locator('label[for="unknown-date"]')).to_have_text(FR["form"]["date_unknown"])
    frame.locator("#unknown-date").check()
    assert axe_violations(frame, "widget-unknown-date") == []
    screenshot(page, "unknown-date")
    frame.locator("#submit").click()
    expect(frame.locator("#answer-title")).to_have_text(FR["answer"]["affected"]["title"])
    assert tab.checks()[-1].post_data_json["birth_date"] == unknown.birth_date
    frame.locator("#again").click()
    glued = re.sub(r"[\s'’-]+", "", particle.last_name).capitalize()  # "Delafontaine"
    fill(frame, particle.nir, particle.birth_date, glued)
    frame.locator("#submit").click()
    expect(frame.locator("#answer-title")).to_have_text(FR["answer"]["affected"]["title"])
    assert tab.checks()[-1].post_data_json["last_name"] == glued


def test_demo_page_loads_the_widget_through_embed_js(site: Site, tab: Tab) -> None:
    page = tab.page
    page.goto(site.api.url + "/")
    frame = widget(page)
    src = page.locator("iframe").get_attribute("src") or ""
    assert src.startswith(f"{site.api.url}/widget?")
    expect(frame.locator("h1")).to_have_text(FR["form"]["heading"])
    expect(page.locator("iframe")).to_have_attribute("title", FR["meta"]["title"])
    loaded = [r.url for r in tab.requests]
    for path in ("/embed.js", "/widget?", "/widget/widget.js", "/widget/widget.css"):
        assert any(path in url for url in loaded), path
    assert any(url.endswith("/widget/i18n/fr.json") for url in loaded)
    # Nothing from anywhere else, nothing refused by a CSP, no error.
    assert all(url.startswith(site.api.url) for url in loaded), loaded
    assert tab.console_errors == []
    assert page.context.cookies() == []
    privacy = frame.locator("#privacy-link")
    assert privacy.evaluate("a => a.href") == f"{site.api.url}/privacy#fr"
    assert privacy.get_attribute("target") == "_blank"
    screenshot(page, "demo-empty-form")


def test_affected_probe_shows_the_affected_answer_with_its_categories(
    site: Site, tab: Tab, affected: Probe, dataset: Dataset
) -> None:
    page = tab.page
    page.goto(site.api.url + "/")
    frame = widget(page)
    submit(frame, affected)
    texts = FR["answer"]
    expect(frame.locator("#answer-title")).to_have_text(texts["affected"]["title"])
    shown = frame.locator("#exposed li").evaluate_all("items => items.map(i => i.dataset.category)")
    assert shown == list(affected.categories)
    for category in affected.categories:
        label = texts["categories"][category]["label"]
        expect(frame.locator(f'#exposed li[data-category="{category}"]')).to_contain_text(label)
    for heading in ("actions_heading", "scams_heading", "complaint_heading", "relatives_heading"):
        expect(frame.locator("#answer")).to_contain_text(texts["affected"][heading])
    expect(frame.locator("#answer a[href*='cnil.fr']")).to_have_count(1)
    assert frame.locator("#answer").get_attribute("aria-live") == "polite"
    assert active_id(frame) == "answer-title"  # focus moved to the answer
    [request] = tab.checks()
    sent = dict(request.post_data_json)
    # Chromium solved the server's challenge in the vendored Argon2id worker.
    assert issuer(load_pepper(dataset.key)).verify(sent.pop("altcha")) is not None
    assert sent == {
        "nir": compact(affected.nir),
        "birth_date": affected.birth_date,
        "last_name": affected.last_name.strip(),
        "lang": "fr",
    }
    assert page.context.cookies() == []
    screenshot(page, "affected-answer")


def test_not_found_probe_shows_the_not_found_answer(site: Site, tab: Tab, not_found: Probe) -> None:
    page = tab.page
    page.goto(site.api.url + "/")
    frame = widget(page)
    submit(frame, not_found)
    texts = FR["answer"]["not_found"]
    expect(frame.locator("#answer-title")).to_have_text(texts["title"])
    expect(frame.locator("#answer")).to_contain_text(texts["not_means"])
    expect(frame.locator("#exposed")).to_have_count(0)
    assert active_id(frame) == "answer-title"
    screenshot(page, "not-found-answer")


def test_invalid_nir_key_is_caught_before_any_request(
    site: Site, tab: Tab, affected: Probe
) -> None:
    page = tab.page
    page.goto(site.api.url + "/")
    frame = widget(page)
    nir = compact(affected.nir)
    wrong = nir[:13] + f"{int(nir[13:]) % 97 + 1:02d}"
    fill(frame, wrong, affected.birth_date, affected.last_name)
    frame.locator("#submit").click()
    expect(frame.locator("#nir-error")).to_have_text(FR["errors"]["nir_key"])
    expect(frame.locator("#nir")).to_have_attribute("aria-invalid", "true")
    assert "nir-error" in (frame.locator("#nir").get_attribute("aria-describedby") or "")
    assert active_id(frame) == "nir"
    page.wait_for_timeout(300)  # a request would have left by now
    assert tab.checks() == []
    screenshot(page, "nir-key-error")
    # The network log does see a request once the key is right: the assertion above can fail.
    frame.locator("#nir").fill(nir)
    frame.locator("#submit").click()
    expect(frame.locator("#answer-title")).to_have_text(FR["answer"]["affected"]["title"])
    expect(frame.locator("#nir-error")).to_be_hidden()
    assert len(tab.checks()) == 1


def test_every_field_error_is_shown_without_a_request(site: Site, tab: Tab) -> None:
    page = tab.page
    page.goto(site.api.url + "/")
    frame = widget(page)
    frame.locator("#submit").click()
    expect(frame.locator("#nir-error")).to_have_text(FR["errors"]["nir_required"])
    expect(frame.locator("#date-error")).to_have_text(FR["errors"]["date_required"])
    expect(frame.locator("#name-error")).to_have_text(FR["errors"]["name_required"])
    fill(frame, "5 85 03 75 115 423 57", "1990-02-31", "--")
    frame.locator("#submit").click()
    expect(frame.locator("#nir-error")).to_have_text(FR["errors"]["nir_range"])
    expect(frame.locator("#date-error")).to_have_text(FR["errors"]["date_invalid"])
    expect(frame.locator("#name-error")).to_have_text(FR["errors"]["name_invalid"])
    tomorrow = (date.today() + timedelta(days=2)).isoformat()
    fill(frame, "1 85 03", tomorrow, "Dupont")
    frame.locator("#submit").click()
    expect(frame.locator("#nir-error")).to_have_text(FR["errors"]["nir_format"])
    expect(frame.locator("#date-error")).to_have_text(FR["errors"]["date_future"])
    expect(frame.locator("#name-error")).to_be_hidden()
    assert tab.checks() == []
    screenshot(page, "field-errors")


def test_a_name_in_another_script_asks_for_latin_letters(site: Site, tab: Tab) -> None:
    """The server refuses it (422); the form says why before sending anything."""
    page = tab.page
    page.goto(site.api.url + "/")
    frame = widget(page)
    fill(frame, "5 85 03 75 115 423 57", "1990-02-31", "Дюпон")
    frame.locator("#submit").click()
    expect(frame.locator("#name-error")).to_have_text(FR["errors"]["name_not_latin"])
    assert tab.checks() == []


def test_nir_birth_date_mismatch_is_only_a_hint(site: Site, tab: Tab, dataset: Dataset) -> None:
    """A child registered under a parent's NIR: the hint shows, the check still runs."""
    child = next(p for p in dataset.by_expected("affected") if mismatched(p))
    page = tab.page
    page.goto(site.api.url + "/")
    frame = widget(page)
    fill(frame, child.nir, child.birth_date, child.last_name)
    expect(frame.locator("#nir-mismatch")).to_have_text(FR["hints"]["nir_date_mismatch"])
    frame.locator("#submit").click()
    expect(frame.locator("#answer-title")).to_have_text(FR["answer"]["affected"]["title"])
    expect(frame.locator("#nir-mismatch")).to_be_visible()
    expect(frame.locator("#nir-error")).to_be_hidden()
    assert len(tab.checks()) == 1
    screenshot(page, "mismatch-hint")


def test_nir_is_formatted_as_the_patient_types(site: Site, tab: Tab, affected: Probe) -> None:
    page = tab.page
    page.goto(site.api.url + "/")
    frame = widget(page)
    nir = compact(affected.nir)
    frame.locator("#nir").press_sequentially(nir.lower())
    expect(frame.locator("#nir")).to_have_value(stdnum_nir.format(nir))
    # Backspace just after a group's space removes the digit before it, not the space
    # (which formatting would put back at once, leaving the caret stuck).
    frame.locator("#nir").fill("1 85 03")
    frame.locator("#nir").evaluate("input => input.setSelectionRange(5, 5)")
    frame.locator("#nir").press("Backspace")
    expect(frame.locator("#nir")).to_have_value("1 80 3")
    frame.locator("#nir").fill("2.69.05.2A.123.456")
    expect(frame.locator("#nir")).to_have_value("2 69 05 2A 123 456")


def test_iframe_resizes_to_its_content_and_ignores_forged_messages(
    site: Site, tab: Tab, affected: Probe
) -> None:
    page = tab.page
    page.goto(site.api.url + "/")
    frame = widget(page)
    expect_fits(page, frame)
    before = iframe_height(page)
    assert before != 640  # the loader's placeholder height was replaced
    submit(frame, affected)
    expect(frame.locator("#answer-title")).to_be_visible()
    expect_fits(page, frame)
    grown = iframe_height(page)
    assert grown > before + 300
    # Same origin as the widget but not the widget's window: the loader ignores it.
    page.evaluate("window.postMessage({type: 'selfcheck:resize', height: 5000}, '*')")
    page.wait_for_timeout(200)
    assert iframe_height(page) == grown
    # "Check another identity" empties the answer and the frame shrinks back.
    frame.locator("#again").click()
    expect(frame.locator("#answer")).to_be_empty()
    expect_fits(page, frame)
    assert iframe_height(page) < grown


#: A phone and a desktop: the iframe is 100% wide up to 42rem.
WIDTHS = (320, 1280)


def answer_seen_by_the_host(page: Page, url: str, probe: Probe, lang: str) -> Seen:
    page.goto(url)
    frame = widget(page)
    expect_fits(page, frame)
    submit(frame, probe)
    answer_title = CATALOGUES[lang]["answer"][probe.expected]["title"]
    expect(frame.locator("#answer-title")).to_have_text(answer_title)
    if probe.expected == "affected":
        shown = frame.locator("#exposed li").evaluate_all("i => i.map(li => li.dataset.category)")
        assert shown == list(probe.categories)
    assert active_id(frame) == "answer-title"  # focus management unchanged
    expect_fits(page, frame)  # the frame still fits its content: no inner scrollbar
    expect_answer_in_view(page, frame)
    return seen_by_the_host(page)


def test_the_host_page_cannot_tell_affected_from_not_found(
    site: Site, browser: Any, dataset: Dataset
) -> None:
    """Height, messages, title and scroll position: the same for every outcome and category set.

    The host page's scripts are what the iframe protects the patient from; an affected
    answer 1,000 px taller than a not-found one would tell them. Heights may differ between
    widths and languages (the host knows both), never between outcomes.
    """
    affected = sorted(
        (p for p in dataset.by_expected("affected") if hint_free(p)),
        key=lambda p: (len(p.categories), p.nir),
    )
    not_found = [p for p in dataset.by_expected("not_found") if hint_free(p)]
    assert len(affected[0].categories) < len(affected[-1].categories)
    probes = [affected[0], not_found[0], affected[-1], not_found[-1]]
    tab = open_tab(browser)
    page = tab.page
    heights: dict[tuple[str, int], float] = {}
    try:
        for lang, width in itertools.product(("fr", "en"), WIDTHS):
            page.set_viewport_size({"width": width, "height": 900})
            url = f"{site.host_origin}/host-{lang}.html"
            seen = [answer_seen_by_the_host(page, url, probe, lang) for probe in probes]
            assert all(s == seen[0] for s in seen), (lang, width, seen)
            assert seen[0].title == CATALOGUES[lang]["meta"]["title"]
            heights[lang, width] = seen[0].height
        print("iframe height on the host page for every answer:", heights)
        assert heights["fr", WIDTHS[0]] > heights["fr", WIDTHS[-1]]  # measured, not a constant
        # Once shown, an answer is measured again for a new width or language, and what the
        # host sees meanwhile (every message, the scroll position) is the same either way.
        desktop, phone = WIDTHS[-1], WIDTHS[0]
        for lang, other in (("fr", "en"), ("en", "fr")):
            later = []
            for probe in (affected[0], not_found[0]):
                page.set_viewport_size({"width": desktop, "height": 900})
                answer_seen_by_the_host(page, f"{site.host_origin}/host-{lang}.html", probe, lang)
                page.evaluate("window.spyMessages = []")
                page.set_viewport_size({"width": phone, "height": 900})
                expect_iframe_height(page, heights[lang, phone])
                page.set_viewport_size({"width": desktop, "height": 900})
                expect_iframe_height(page, heights[lang, desktop])
                widget(page).locator("#switch").click()
                expect_iframe_height(page, heights[other, desktop])
                later.append(seen_by_the_host(page))
            assert later[0] == later[1], (lang, later)
            assert later[0].title == CATALOGUES[other]["meta"]["title"]
    finally:
        page.context.close()


def test_english_from_data_lang_and_the_language_switch(site: Site, tab: Tab) -> None:
    page = tab.page  # a French browser: data-lang="en" wins
    page.goto(site.host_origin + "/host-en.html")
    frame = widget(page)
    expect(frame.locator("h1")).to_have_text(EN["form"]["heading"])
    expect(frame.locator("label[for=nir]")).to_have_text(EN["form"]["nir_label"])
    assert frame.evaluate("document.documentElement.lang") == "en"
    expect(page.locator("iframe")).to_have_attribute("title", EN["meta"]["title"])
    screenshot(page, "english")
    frame.locator("#submit").click()
    expect(frame.locator("#nir-error")).to_have_text(EN["errors"]["nir_required"])
    frame.locator("#switch").click()
    expect(frame.locator("h1")).to_have_text(FR["form"]["heading"])
    expect(frame.locator("#nir-error")).to_have_text(FR["errors"]["nir_required"])
    assert frame.evaluate("document.documentElement.lang") == "fr"
    expect(page.locator("iframe")).to_have_attribute("title", FR["meta"]["title"])


def test_the_host_pages_language_wins_over_the_browsers(
    site: Site, browser: Any, not_found: Probe
) -> None:
    """The demo page is French (<html lang="fr">, no data-lang): so is its widget, even in an
    English-language browser."""
    tab = open_tab(browser, locale="en-GB")
    try:
        page = tab.page
        page.goto(site.api.url + "/")
        assert page.evaluate("document.documentElement.lang") == "fr"
        assert page.locator("[data-lang]").count() == 0
        frame = widget(page)
        expect(frame.locator("h1")).to_have_text(FR["form"]["heading"])
        assert frame.evaluate("document.documentElement.lang") == "fr"
        submit(frame, not_found)
        expect(frame.locator("#answer-title")).to_have_text(FR["answer"]["not_found"]["title"])
        assert tab.checks()[0].post_data_json["lang"] == "fr"
    finally:
        tab.page.context.close()


def test_browser_language_chooses_english_without_any_page_language(
    site: Site, browser: Any, not_found: Probe
) -> None:
    tab = open_tab(browser, locale="en-GB")
    try:
        page = tab.page
        page.goto(site.host_origin + "/host-nolang.html")
        frame = widget(page)
        expect(frame.locator("h1")).to_have_text(EN["form"]["heading"])
        submit(frame, not_found)
        expect(frame.locator("#answer-title")).to_have_text(EN["answer"]["not_found"]["title"])
        assert tab.checks()[0].post_data_json["lang"] == "en"
        screenshot(page, "english-not-found")
    finally:
        tab.page.context.close()


def test_keyboard_only_flow(site: Site, tab: Tab, not_found: Probe) -> None:
    page = tab.page
    page.goto(site.api.url + "/")
    frame = widget(page)
    for _ in range(12):  # through the practice's links into the iframe
        page.keyboard.press("Tab")
        if active_id(frame) == "nir" and frame.evaluate("document.hasFocus()"):
            break
    else:
        pytest.fail("Tab never reached the NIR field")
    assert focus_ring(frame)
    page.keyboard.type(compact(not_found.nir))
    expect(frame.locator("#nir")).to_have_value(stdnum_nir.format(compact(not_found.nir)))
    year, month, day = not_found.birth_date.split("-")
    fields = [("day", day), ("month", month), ("year", year), ("unknown-date", None)]
    for field_id, value in (*fields, ("name", "")):
        page.keyboard.press("Tab")
        assert active_id(frame) == field_id
        if value is not None:  # the "I don't know my day or month" box stays unticked
            page.keyboard.type(value or not_found.last_name)
    page.keyboard.press("Tab")
    assert active_id(frame) == "submit"
    assert focus_ring(frame)
    screenshot(page, "keyboard-focus-on-submit")
    page.keyboard.press("Enter")
    expect(frame.locator("#answer-title")).to_have_text(FR["answer"]["not_found"]["title"])
    assert active_id(frame) == "answer-title"
    page.keyboard.press("Tab")
    assert active_id(frame) == "again"
    page.keyboard.press("Enter")
    expect(frame.locator("#answer")).to_be_empty()
    assert active_id(frame) == "nir"
    expect(frame.locator("#nir")).to_have_value("")


def focus_ring(frame: Frame) -> bool:
    """The focused element shows a clear outline (keyboard focus, :focus-visible)."""
    style = frame.evaluate(
        """() => {
          const s = getComputedStyle(document.activeElement);
          return {matches: document.activeElement.matches(':focus-visible'),
                  style: s.outlineStyle, width: parseFloat(s.outlineWidth)};
        }"""
    )
    return bool(style["matches"] and style["style"] != "none" and style["width"] >= 2)


def test_cross_origin_host_cannot_read_the_form_and_the_widget_works(
    site: Site, tab: Tab, affected: Probe
) -> None:
    page = tab.page
    page.goto(site.host_origin + "/host-fr.html")
    frame = widget(page)
    assert page.evaluate("location.origin") != frame.evaluate("location.origin")
    assert page.locator("iframe").get_attribute("sandbox")  # the widget cannot drive the host
    fill(frame, affected.nir, affected.birth_date, affected.last_name)
    attempt = page.evaluate("spyRead()")
    assert attempt == {"contentDocument": "null", "read": "SecurityError"}
    frame.locator("#submit").click()
    expect(frame.locator("#answer-title")).to_have_text(FR["answer"]["affected"]["title"])
    expect_fits(page, frame)
    assert page.evaluate("spyRead()")["read"] == "SecurityError"
    # All the host page ever receives: heights and the title, from the widget's origin.
    messages = page.evaluate("window.spyMessages")
    assert messages
    for message in messages:
        assert message["origin"] == site.api.url
        assert set(message["data"]) == {"type", "height", "title"}
    # A message from the host's own origin does not resize the widget.
    height = iframe_height(page)
    page.evaluate("window.postMessage({type: 'selfcheck:resize', height: 40}, '*')")
    page.wait_for_timeout(200)
    assert iframe_height(page) == height
    assert [e for e in tab.console_errors if "favicon" not in e] == []
    screenshot(page, "cross-origin-host")


def test_a_site_not_in_frame_ancestors_cannot_frame_the_widget(site: Site, tab: Tab) -> None:
    page = tab.page
    with page.expect_console_message(lambda m: "frame-ancestors" in m.text):
        page.goto(site.foreign_origin + "/host-fr.html")
    handle = page.locator("iframe").element_handle()
    frame = handle.content_frame() if handle else None
    assert frame is not None
    assert not frame.url.startswith(site.api.url)
    assert frame.locator("#nir").count() == 0


def test_axe_finds_no_serious_violation(
    site: Site, tab: Tab, affected: Probe, not_found: Probe
) -> None:
    page = tab.page
    page.goto(site.api.url + "/")
    frame = widget(page)
    found = {"demo-page": axe_violations(page, "demo-page", iframes=False)}
    found["widget-empty"] = axe_violations(frame, "widget-empty")
    frame.locator("#submit").click()
    expect(frame.locator("#nir-error")).to_be_visible()
    found["widget-errors"] = axe_violations(frame, "widget-errors")
    submit(frame, affected)
    expect(frame.locator("#answer-title")).to_have_text(FR["answer"]["affected"]["title"])
    found["widget-affected"] = axe_violations(frame, "widget-affected")
    submit(frame, not_found)
    expect(frame.locator("#answer-title")).to_have_text(FR["answer"]["not_found"]["title"])
    found["widget-not-found"] = axe_violations(frame, "widget-not-found")
    page.goto(site.api.url + "/privacy")
    found["privacy"] = axe_violations(page, "privacy")
    assert {state: [v["id"] for v in v_list] for state, v_list in found.items() if v_list} == {}


def test_widget_works_320_px_wide(site: Site, browser: Any, affected: Probe) -> None:
    tab = open_tab(browser, width=320)
    try:
        page = tab.page
        page.goto(site.api.url + "/")
        frame = widget(page)
        overflow = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        assert frame.evaluate(overflow) <= 0
        assert page.evaluate(overflow) <= 0
        submit(frame, affected)
        expect(frame.locator("#answer-title")).to_have_text(FR["answer"]["affected"]["title"])
        assert frame.evaluate(overflow) <= 0
        assert page.evaluate(overflow) <= 0
        expect_fits(page, frame)
        screenshot(page, "320px-affected")
    finally:
        tab.page.context.close()


def test_unavailable_and_network_failure_show_calm_messages(
    site: Site, tab: Tab, not_found: Probe
) -> None:
    """The display of a 503 (the real one needs a failing Redis, see the rate-limit tests)."""
    page = tab.page
    page.route(
        f"**{CHECK}",
        lambda route: route.fulfill(
            status=503,
            headers={"retry-after": "30", "content-type": "application/json"},
            body='{"error": "unavailable", "message": "", "padding": ""}',
        ),
    )
    page.goto(site.api.url + "/")
    frame = widget(page)
    submit(frame, not_found)
    problems = FR["problems"]
    expect(frame.locator("#answer-title")).to_have_text(problems["unavailable_title"])
    expect(frame.locator("#answer")).to_contain_text("30 secondes")
    assert active_id(frame) == "answer-title"
    screenshot(page, "unavailable")
    page.unroute(f"**{CHECK}")
    page.route(f"**{CHECK}", lambda route: route.abort())
    frame.locator("#submit").click()
    expect(frame.locator("#answer-title")).to_have_text(problems["error_title"])


def test_rate_limited_check_shows_when_to_retry(
    dataset: Dataset,
    browser: Any,
    tmp_path_factory: pytest.TempPathFactory,
    affected: Probe,
    not_found: Probe,
) -> None:
    env = {
        "SELFCHECK_INDEX_PATH": str(dataset.index),
        "SELFCHECK_KEY_FILE": str(dataset.key),
        "SELFCHECK_ALLOW_TEST_PROFILE": "true",
        "SELFCHECK_RESPONSE_FLOOR_MS": "0",
        "SELFCHECK_HASH_CONCURRENCY": "1",
        "SELFCHECK_LIMITS_PER_NETWORK": "1/minute",
        # The widget solves every check's proof of work: the proven class's limit applies.
        "SELFCHECK_LIMITS_PER_ADDRESS_PROVEN": "1/minute",
        "SELFCHECK_POW_PROFILE": "test",
    }
    log = tmp_path_factory.mktemp("limited") / "api.log"
    with api_server(env, log) as limited:
        tab = open_tab(browser)
        try:
            page = tab.page
            page.goto(limited.url + "/")
            frame = widget(page)
            submit(frame, not_found)
            expect(frame.locator("#answer-title")).to_have_text(FR["answer"]["not_found"]["title"])
            submit(frame, affected)
            problems = FR["problems"]
            expect(frame.locator("#answer-title")).to_have_text(problems["rate_limited_title"])
            text = frame.locator("#answer").inner_text()
            assert "1 minute" in text
            assert re.search(r"\b\d{2}:\d{2}\b", text), text
            assert active_id(frame) == "answer-title"
            assert [r.response().status for r in tab.checks() if r.response()] == [200, 429]
            # Nothing to retype when the wait is over.
            expect(frame.locator("#again")).to_have_count(0)
            expect(frame.locator("#name")).to_have_value(affected.last_name)
            screenshot(page, "rate-limited")
        finally:
            tab.page.context.close()


# ---- The client-side rules are the server's rules ---------------------------------


def python_nir(raw: str) -> str | None:
    try:
        normalise_nir(raw)
    except InvalidIdentity as exc:
        return str(exc)
    return None


def python_date(iso: str, today: date) -> bool:
    try:
        parse_birth_date(iso, today=today)
    except InvalidIdentity:
        return False
    return True


def python_name(raw: str) -> str | None:
    try:
        return normalise_last_name(raw.strip())
    except InvalidIdentity:
        return None


def nir_cases(dataset: Dataset) -> list[str]:
    rng = random.Random(5)
    base = [p.nir for p in dataset.probes]
    cases = [*base, "", " ", "1" * 41, "1 85 03 75 115 423 57", "185037511542357"]
    alphabet = "0123456789AB .-x"
    for nir in [n for n in base if python_nir(n) is None][:150]:
        body = compact(nir)
        for month in ("00", "13", "19", "20", "30", "31", "42", "43", "49", "50", "99"):
            b = body[:3] + month + body[5:13]
            cases.append(b + stdnum_nir.calc_check_digits(b))
        for sex in "0569":
            b = sex + body[1:13]
            cases.append(b + stdnum_nir.calc_check_digits(b))
        b = body[:10] + "000"
        cases.append(b + stdnum_nir.calc_check_digits(b))
        for department in ("2A", "2B", "2a"):
            b = body[:5] + department + body[7:13]
            cases.append(b + stdnum_nir.calc_check_digits(b.upper()))
        cases.append(body[:5] + "2C" + body[7:])
        i = rng.randrange(len(body))
        cases.append(body[:i] + rng.choice(alphabet) + body[i + 1 :])
        cases.append(body[:i] + body[i + 1 :])
        cases.append(body[:i] + rng.choice("0123456789") + body[i:])
        cases.append(body.lower())
        cases.append("\u00a0".join((body[:5], body[5:10], body[10:])))
        cases.append(body[:13] + f"{(int(body[13:]) + rng.randrange(1, 97)) % 100:02d}")
    cases.append("１８５０３７５１１５４２３５７")  # full-width digits are not digits here
    return cases


def name_cases(dataset: Dataset) -> list[str]:
    tricky = [
        "", " ", "-", "' '", "...", "Ø", "Œuvre", "Straße", "ﬁlippi", "Łukasz", "Müller",
        "d'Artagnan", "名前", "x" * 100, "x" * 101, " " + "x" * 100 + " ", "Ñúñez", "e\u0301",
        "ıi", "Αλέξης", "Þór", "ǅ", "Æsa", "Ｄｕｐｏｎｔ", "O\u2019Neil", "van der Berg",
        "Dupont\u0439", "Pаpadopoulos", "Martin名", "Ωmartin", "D\u02bcArtagnan",
        "de La Fontaine", "LA FONTAINE", "Mueller", "Lê", "le", "AEE", "Queue", "N'Diaye",
    ]  # fmt: skip
    return [p.last_name for p in dataset.probes] + tricky


def test_client_rules_match_the_server_rules(site: Site, tab: Tab, dataset: Dataset) -> None:
    page = tab.page
    page.goto(site.api.url + "/widget")
    page.locator("#nir").wait_for(state="visible")
    today = date.today()
    nirs = nir_cases(dataset)
    dates = [p.birth_date for p in dataset.probes] + [
        "1890-01-01", "1889-12-31", "2000-02-29", "1900-02-29", "2023-02-29", "1990-02-31",
        "2024-13-01", "2024-00-10", "2024-04-31", "0990-01-01",
        "1950-00-00", "1950-03-00", "1889-00-00", "1890-00-00", "2024-13-00",
        f"{today.year}-{today.month:02d}-00", f"{today.year + 1}-00-00",
        today.isoformat(), (today + timedelta(days=1)).isoformat(),
    ]  # fmt: skip
    names = name_cases(dataset)
    candidates = [(p.nir, p.birth_date) for p in dataset.probes]
    candidates += zip(nirs, dates * 20, strict=False)
    pairs = [(n, d) for n, d in candidates if python_nir(n) is None and python_date(d, today)]
    js = page.evaluate(
        """([nirs, dates, names, pairs, today]) => {
          const R = window.SelfcheckRules;
          const [y, m, d] = today.split("-").map(Number);
          const now = new Date(y, m - 1, d);
          return {
            nirs: nirs.map((n) => R.checkNir(n)),
            dates: dates.map((iso) => { const [yy, mm, dd] = iso.split("-");
                                        return R.checkDate(dd, mm, yy, now).code; }),
            names: names.map((n) => [R.checkName(n), R.foldName(n.trim())]),
            pairs: pairs.map(([n, iso]) => R.nirMatchesDate(n, iso)),
            formats: nirs.map((n) => R.formatNir(n)),
          };
        }""",
        [nirs, dates, names, pairs, today.isoformat()],
    )
    js_nirs = [{"nir_required": "nir_format"}.get(c, c) if c else None for c in js["nirs"]]
    assert js_nirs == [python_nir(n) for n in nirs]
    assert [c is None for c in js["dates"]] == [python_date(d, today) for d in dates]
    for name, (code, folded) in zip(names, js["names"], strict=True):
        expected = python_name(name)
        assert (code is None) == (expected is not None), name
        if expected is not None:
            assert folded == expected, name
    assert js["pairs"] == [
        nir_matches_birth_date(normalise_nir(n), parse_birth_date(d, today=today)) for n, d in pairs
    ]
    for raw, formatted in zip(nirs, js["formats"], strict=True):
        if python_nir(raw) is None:
            assert formatted == stdnum_nir.format(compact(raw)), raw
    assert sum(c is None for c in js_nirs) > 100
    assert set(js["pairs"]) == {True, False}
    assert len({c for c in js_nirs if c}) == 3  # format, range and key errors all exercised


def test_private_delivery_shows_one_message_with_a_spam_hint_at_the_same_height(
    site: Site, tab: Tab, affected: Probe, not_found: Probe
) -> None:
    """SELFCHECK_DELIVERY=private: the one 'submitted' answer, its spam-folder hint, and the
    answer area at the height it has for the tallest screen answer, whatever was typed."""
    page = tab.page
    body = json.dumps(
        {
            "status": "submitted",
            "incident": {"id": "test-incident", "label": "Test incident"},
            "message": "",
            "hint": "",
            "lang": "fr",
            "checked_at": "2026-11-30T12:00:00Z",
            "padding": "",
        }
    )
    page.goto(site.api.url + "/")
    frame = widget(page)
    submit(frame, not_found)
    expect(frame.locator("#answer-title")).to_have_text(FR["answer"]["not_found"]["title"])
    screen_height = frame.locator("#result").evaluate("r => r.getBoundingClientRect().height")
    page.route(
        f"**{CHECK}",
        lambda route: route.fulfill(
            status=200, headers={"content-type": "application/json"}, body=body
        ),
    )
    heights = []
    for probe in (affected, not_found):
        frame.locator("#again").click()
        submit(frame, probe)
        submitted = FR["answer"]["submitted"]
        expect(frame.locator("#answer-title")).to_have_text(submitted["title"])
        expect(frame.locator("#answer")).to_contain_text(submitted["message"])
        expect(frame.locator("#answer .hint")).to_have_text(submitted["hint"])
        assert "indésirables" in submitted["hint"]
        heights.append(frame.locator("#result").evaluate("r => r.getBoundingClientRect().height"))
    assert heights[0] == heights[1]
    # The space of the tallest screen answer stays reserved (less its incident line, which
    # a private answer does not show): the mode is the host's own setting, the outcome not.
    assert abs(heights[0] - screen_height) < 60
    page.unroute(f"**{CHECK}")
