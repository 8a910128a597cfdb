"""Texts the operator owns: privacy notice, incident texts, advice (FR/EN).

``SELFCHECK_CONTENT_DIR`` may hold any of ``privacy.json``, ``incidents.json``,
``advice.fr.json`` and ``advice.en.json``; a file it lacks comes from the bundled
defaults (``app/i18n/``). Every file is validated at start-up against the models below
(pydantic, unknown fields refused), and a bad one stops the start with one line naming
the file and the first wrong field. The widget's catalogue, ``/privacy`` and the
answer's incident label and description are rendered from what is loaded here.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.advice import LANGS, Lang

_TEXT = Field(min_length=1, max_length=2000)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoticeText(_Strict):
    """What GDPR articles 13-14 make the controller say, in one language."""

    controller: str = _TEXT
    dpo_contact: str = _TEXT
    legal_basis: str = _TEXT
    host: str = _TEXT
    retention: str = _TEXT


class PrivacyNotice(_Strict):
    fr: NoticeText
    en: NoticeText


class IncidentText(_Strict):
    label: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=1000)


class IncidentTexts(_Strict):
    fr: IncidentText
    en: IncidentText


class Outcome(_Strict):
    title: str
    summary: str
    actions: list[str]
    scams: list[str]
    report: str
    complaint: str
    relatives: str
    caveat: str


class AdviceFile(_Strict):
    categories: dict[str, str]
    affected: Outcome
    not_found: Outcome


class ContentRefused(Exception):
    """A content file is missing a field, has a wrong one, or is not JSON: one line."""


def _read(directory: Path | None, name: str) -> tuple[Any, str]:
    """The operator's file if present, else the bundled one; (data, where it came from)."""
    if directory is not None and (directory / name).is_file():
        path = directory / name
        try:
            return json.loads(path.read_text("utf-8")), str(path)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ContentRefused(f"content file {path} is not readable JSON ({exc})") from None
    return json.loads((resources.files("app") / "i18n" / name).read_text("utf-8")), name


M = TypeVar("M", bound=BaseModel)


def _validate(model: type[M], data: Any, where: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(file)"
        raise ContentRefused(f"content file {where}: {field}: {first['msg']}") from None


def _is_bundled(directory: Path | None) -> bool:
    return directory is None or not (directory / "privacy.json").is_file()


@dataclass(frozen=True, slots=True)
class Content:
    privacy: PrivacyNotice
    incidents: dict[str, IncidentTexts]
    advice: dict[str, dict[str, Any]]
    #: The bundled notice names no controller: start-up warns until the operator's is there.
    bundled_notice: bool = False

    @classmethod
    def load(cls, directory: Path | None) -> Content:
        if directory is not None and not directory.is_dir():
            raise ContentRefused(f"SELFCHECK_CONTENT_DIR {directory} is not a directory")
        privacy = _validate(PrivacyNotice, *_read(directory, "privacy.json"))
        data, where = _read(directory, "incidents.json")
        if not isinstance(data, dict):
            raise ContentRefused(f"content file {where}: (file): must map incident ids to texts")
        incidents = {
            str(incident): _validate(IncidentTexts, texts, f"{where} [{incident}]")
            for incident, texts in data.items()
        }
        advice: dict[str, dict[str, Any]] = {}
        for lang in LANGS:
            data, where = _read(directory, f"advice.{lang}.json")
            _validate(AdviceFile, data, where)
            advice[lang] = data
        return cls(privacy, incidents, advice, bundled_notice=_is_bundled(directory))

    def notice(self, lang: Lang) -> NoticeText:
        return self.privacy.fr if lang == "fr" else self.privacy.en

    def incident(self, incident_id: str, label: str, lang: Lang) -> dict[str, str]:
        """The answer's incident: the operator's localised label and description, or the
        index header's label."""
        texts = self.incidents.get(incident_id)
        if texts is None:
            return {"id": incident_id, "label": label, "description": ""}
        text = texts.fr if lang == "fr" else texts.en
        return {"id": incident_id, "label": text.label, "description": text.description}


#: The widget's one-line notice, per language (its catalogue's ``privacy.operator``).
WIDGET_OPERATOR = {
    "fr": "Responsable du traitement : {controller}. Délégué à la protection des données : "
    "{dpo_contact}. Le site de votre cabinet ne voit ni vos saisies ni le résultat.",
    "en": "Controller: {controller}. Data protection officer: {dpo_contact}. Your practice's "
    "website sees neither what you type nor the result.",
}
#: /privacy's operator section, per language: (heading, field) pairs.
NOTICE_FIELDS = {
    "fr": [
        ("Responsable du traitement", "controller"),
        ("Délégué à la protection des données", "dpo_contact"),
        ("Base légale", "legal_basis"),
        ("Hébergeur", "host"),
        ("Durée de conservation", "retention"),
    ],
    "en": [
        ("Controller", "controller"),
        ("Data protection officer", "dpo_contact"),
        ("Legal basis", "legal_basis"),
        ("Host", "host"),
        ("Retention", "retention"),
    ],
}


def widget_catalogue(raw: bytes, content: Content, lang: Lang) -> bytes:
    """The widget's bundled catalogue with the operator's notice in ``privacy.operator``."""
    catalogue = json.loads(raw)
    notice = content.notice(lang)
    catalogue["privacy"]["operator"] = WIDGET_OPERATOR[lang].format(
        controller=notice.controller, dpo_contact=notice.dpo_contact
    )
    return json.dumps(catalogue, ensure_ascii=False, indent=2).encode()


def privacy_page(template: bytes, content: Content) -> bytes:
    """/privacy with the operator's section (escaped) where the template marks it."""
    page = template.decode()
    for lang in LANGS:
        notice = content.notice(lang)
        rows = "".join(
            f"<dt>{html.escape(heading)}</dt><dd>{html.escape(getattr(notice, name))}</dd>"
            for heading, name in NOTICE_FIELDS[lang]
        )
        page = page.replace(f"<!--operator:{lang}-->", f'<dl class="operator">{rows}</dl>')
    return page.encode()
