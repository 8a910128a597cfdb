"""Localised advice for patients (French and English), loaded from JSON catalogues."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

Lang = Literal["fr", "en"]
LANGS: tuple[Lang, ...] = ("fr", "en")
DEFAULT_LANG: Lang = "fr"
_BY_TAG: dict[str, Lang] = {"fr": "fr", "en": "en"}
_SECTIONS = ("title", "summary", "actions", "scams", "report", "complaint", "relatives", "caveat")


@dataclass(frozen=True, slots=True)
class AdviceCatalogue:
    """``advice.<lang>.json``: category meanings and one section per outcome."""

    by_lang: dict[str, dict[str, Any]]

    @classmethod
    def load(cls) -> AdviceCatalogue:
        folder = resources.files("app") / "i18n"
        by_lang: dict[str, dict[str, Any]] = {
            lang: json.loads((folder / f"advice.{lang}.json").read_text("utf-8")) for lang in LANGS
        }
        for lang, catalogue in by_lang.items():
            for outcome in ("affected", "not_found"):
                missing = [s for s in _SECTIONS if s not in catalogue[outcome]]
                if missing:
                    raise ValueError(f"advice.{lang}.json: {outcome} lacks {missing}")
        return cls(by_lang)

    def advice(self, lang: Lang, outcome: str, exposed: list[str]) -> dict[str, Any]:
        """The same shape for every outcome; only the texts differ."""
        catalogue = self.by_lang[lang]
        section = catalogue[outcome]
        advice = {name: section[name] for name in _SECTIONS}
        advice["exposed"] = [
            {"category": name, "meaning": catalogue["categories"].get(name, "")} for name in exposed
        ]
        return advice


def negotiate_lang(requested: str | None, accept_language: str) -> Lang:
    """An explicit ``lang`` wins; otherwise the first of fr/en in Accept-Language order."""
    explicit = _BY_TAG.get(requested or "")
    if explicit is not None:
        return explicit
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate(accept_language.split(",")[:20]):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((-quality, position, tag.strip().lower()[:2]))
    for _, _, primary in sorted(ranked):
        if primary in _BY_TAG:
            return _BY_TAG[primary]
    return DEFAULT_LANG
