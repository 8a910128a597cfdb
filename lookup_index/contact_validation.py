"""Validates the practices' contact columns: an e-mail address and a French mobile number.

Build machine only (``email-validator`` and ``phonenumbers`` are in the ``[build]``
extra). A contact that fails is dropped, and only its reason code is kept: the
rejects report never holds a value.
"""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from lookup_index.sealed_contact import MAX_EMAIL_LENGTH, Contact

__all__ = ["CONTACT_REASONS", "ValidatedContact", "validate_contact"]

#: Reason codes of a dropped contact, as the rejects report and the summary count them.
CONTACT_REASONS = ("email_invalid", "email_too_long", "mobile_invalid", "mobile_not_french_mobile")
_FRENCH_REGIONS = frozenset({"FR", "GP", "MQ", "GF", "RE", "YT", "PM", "BL", "MF"})


@dataclass(frozen=True, slots=True)
class ValidatedContact:
    contact: Contact
    #: Reason codes of the parts dropped (never their values).
    dropped: tuple[str, ...]


def _email(text: str) -> tuple[str, str | None]:
    try:
        # No DNS lookup: a build must not depend on, or leak to, the network.
        valid = validate_email(text, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        return "", "email_invalid"
    if len(valid.normalized) > MAX_EMAIL_LENGTH:
        return "", "email_too_long"
    return valid.normalized, None


def _mobile(text: str) -> tuple[str, str | None]:
    try:
        number = phonenumbers.parse(text, "FR")
    except phonenumbers.NumberParseException:
        return "", "mobile_invalid"
    if not phonenumbers.is_valid_number(number):
        return "", "mobile_invalid"
    kind = phonenumbers.number_type(number)
    region = phonenumbers.region_code_for_number(number)
    if region not in _FRENCH_REGIONS or kind != phonenumbers.PhoneNumberType.MOBILE:
        return "", "mobile_not_french_mobile"
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None


def validate_contact(email: str, mobile: str) -> ValidatedContact:
    """Normalise what is valid; drop the rest, keeping the reason only."""
    dropped: list[str] = []
    normal_email = normal_mobile = ""
    if email.strip():
        normal_email, reason = _email(email.strip())
        if reason:
            dropped.append(reason)
    if mobile.strip():
        normal_mobile, reason = _mobile(mobile.strip())
        if reason:
            dropped.append(reason)
    return ValidatedContact(Contact(normal_email, normal_mobile), tuple(dropped))
