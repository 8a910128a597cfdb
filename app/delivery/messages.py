"""The messages the send-worker writes: plain text plus simple HTML, French or English.

No tracking (no image, no pixel, no per-recipient link), no link but the service's public
origin, nothing a caller could quote back as proof (no name, no number, no reference): a
message says the check may have been someone else's, and it never asks for anything.
An SMS carries no data categories (mobile numbers get reassigned).
"""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

from lookup_index.categories import CATEGORIES, names_of

_CATEGORY_NAMES = {
    "fr": {
        "identity": "identité (nom, prénom)",
        "contact": "coordonnées",
        "nir": "numéro de sécurité sociale",
        "birth_date": "date de naissance",
        "address": "adresse postale",
        "phone": "numéro de téléphone",
        "email": "adresse e-mail",
        "clinical_notes": "notes médicales",
    },
    "en": {
        "identity": "identity (names)",
        "contact": "contact details",
        "nir": "social security number",
        "birth_date": "birth date",
        "address": "postal address",
        "phone": "phone number",
        "email": "e-mail address",
        "clinical_notes": "clinical notes",
    },
}

_TEXT = {
    "fr": {
        "subject": "Votre vérification : fuite de données de logiciels médicaux",
        "hello": "Bonjour,",
        "checked": (
            "Quelqu'un, très probablement vous, a vérifié ces informations le {date} sur "
            "{origin}. Si ce n'était pas vous, vous n'avez rien à faire."
        ),
        "affected": (
            "Les informations vérifiées correspondent à un dossier exposé lors de la fuite "
            "de données du logiciel de votre cabinet médical."
        ),
        "exposed": "Données exposées : {categories}.",
        "advice": (
            "Méfiez-vous des messages et appels qui évoquent cette fuite. Votre cabinet "
            "vous informera aussi."
        ),
        "never": (
            "Nous ne vous appellerons jamais, et ne vous demanderons jamais de coordonnées "
            "bancaires, de mot de passe ni de code."
        ),
        "more": "Informations : {origin}",
        "sms": (
            "Quelqu'un, très probablement vous, a vérifié vos informations le {date} sur "
            "{origin}. Si ce n'était pas vous, ne faites rien. Nous ne vous appellerons "
            "jamais et ne demanderons jamais de coordonnées bancaires, mot de passe ni code."
        ),
    },
    "en": {
        "subject": "Your check: the medical software data breach",
        "hello": "Hello,",
        "checked": (
            "Someone — most likely you — checked these details on {date} on {origin}. "
            "If it was not you, you need do nothing."
        ),
        "affected": (
            "The details checked match a record exposed in the data breach of your "
            "medical practice's software."
        ),
        "exposed": "Data exposed: {categories}.",
        "advice": (
            "Be wary of messages and calls that mention this breach. Your practice will "
            "also inform you."
        ),
        "never": ("We will never call you, and never ask for bank details, passwords or codes."),
        "more": "More information: {origin}",
        "sms": (
            "Someone - most likely you - checked your details on {date} on {origin}. If it "
            "was not you, do nothing. We will never call you, and never ask for bank "
            "details, passwords or codes."
        ),
    },
}


@dataclass(frozen=True, slots=True)
class MessageContext:
    lang: str
    checked_at: int
    categories: int
    origin: str


def _date(context: MessageContext) -> str:
    return datetime.fromtimestamp(context.checked_at, UTC).strftime("%Y-%m-%d")


def _paragraphs(context: MessageContext) -> list[str]:
    text = _TEXT[context.lang]
    names = _CATEGORY_NAMES[context.lang]
    exposed = [names.get(n, n) for n in names_of(context.categories, CATEGORIES)]
    values = {"date": _date(context), "origin": context.origin}
    paragraphs = [text["hello"], text["checked"].format(**values), text["affected"]]
    if exposed:
        paragraphs.append(text["exposed"].format(categories=", ".join(exposed)))
    paragraphs += [text["advice"], text["never"], text["more"].format(**values)]
    return paragraphs


def email_message(
    context: MessageContext, sender: str, recipient: str, entry_id: str
) -> EmailMessage:
    """One e-mail: text/plain and a simple text/html alternative, no remote content."""
    paragraphs = _paragraphs(context)
    message = EmailMessage()
    message["Subject"] = _TEXT[context.lang]["subject"]
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = format_datetime(datetime.now(UTC))
    # Derived from the outbox entry: a retried delivery carries the same Message-ID.
    digest = hashlib.sha256(entry_id.encode()).hexdigest()[:32]
    message["Message-ID"] = f"<{digest}@{sender.rpartition('@')[2] or 'localhost'}>"
    message["Content-Language"] = context.lang
    message["Auto-Submitted"] = "auto-generated"
    message.set_content("\n\n".join(paragraphs) + "\n")
    origin = html.escape(context.origin, quote=True)
    body = "".join(
        f"<p>{html.escape(p)}</p>".replace(origin, f'<a href="{origin}">{origin}</a>')
        for p in paragraphs
    )
    message.add_alternative(
        f'<!doctype html><html lang="{context.lang}"><body>{body}</body></html>\n',
        subtype="html",
    )
    return message


def sms_text(context: MessageContext) -> str:
    """The SMS body: no data categories."""
    return _TEXT[context.lang]["sms"].format(date=_date(context), origin=context.origin)
