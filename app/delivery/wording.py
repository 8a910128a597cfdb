"""The one answer every valid query gets in private mode, in French and English."""

from __future__ import annotations

SUBMITTED = {
    "fr": (
        "Si ces informations correspondent à un dossier concerné par l'incident, nous avons "
        "écrit au contact que votre cabinet détient. Si rien n'arrive sous 48 heures, cela ne "
        "veut pas dire que vous n'êtes pas concerné·e : votre cabinet vous informera aussi."
    ),
    "en": (
        "If these details match a record of the incident, we have written to the contact "
        "your practice holds. If nothing arrives within 48 hours, it does not mean you were "
        "not affected: your practice will also inform you."
    ),
}
#: Shown under the message by the widget: a message from us may land among spam.
SPAM_HINT = {
    "fr": "Pensez à regarder dans vos courriers indésirables.",
    "en": "Remember to look in your spam or junk folder.",
}
