"""Request and response models of /v1/check (the response models document the fixed shape)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.advice import Lang
from lookup_index.normalise import MAX_NAME_LENGTH, MAX_NIR_INPUT_LENGTH

#: 15 characters less a little: a cheap first filter, normalise.py decides (and both answer 422).
MIN_NIR_INPUT_LENGTH = 13
#: YYYY-MM-DD (YYYY-MM-00, YYYY-00-00 for an unknown day or month: the same length).
ISO_DATE_LENGTH = 10


class CheckRequest(BaseModel):
    """What a patient submits. Strict: no coercion, no extra field, bounded lengths."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    nir: str = Field(
        min_length=MIN_NIR_INPUT_LENGTH,
        max_length=MAX_NIR_INPUT_LENGTH,
        description="15 characters, separators allowed",
    )
    birth_date: str = Field(
        min_length=ISO_DATE_LENGTH,
        max_length=ISO_DATE_LENGTH,
        description="YYYY-MM-DD; YYYY-MM-00 or YYYY-00-00 for an unknown day, or day and month",
    )
    last_name: str = Field(
        min_length=1, max_length=MAX_NAME_LENGTH, description="birth or usage name"
    )
    lang: Lang | None = None
    altcha: str | None = Field(
        default=None,
        description="ALTCHA v2 payload (base64) solving a challenge of GET /v1/challenge; "
        "without a valid one the check falls into the small unproven class",
    )


class Incident(BaseModel):
    id: str
    label: str
    description: str = Field(default="", description="the operator's text (SELFCHECK_CONTENT_DIR)")


class ServedIncident(BaseModel):
    """One incident the service checks against, and what it exposed of this identity."""

    id: str
    label: str
    description: str = ""
    affected: bool
    exposed: list[str]


class ExposedCategory(BaseModel):
    category: str
    meaning: str


class Advice(BaseModel):
    title: str
    summary: str
    exposed: list[ExposedCategory]
    actions: list[str]
    scams: list[str]
    report: str
    complaint: str
    relatives: str
    caveat: str


class CheckAnswer(BaseModel):
    """Both outcomes share this shape and, once padded, the same byte length."""

    status: Literal["affected", "not_found"]
    incident: Incident
    exposed: list[str]
    advice: Advice
    incidents: list[ServedIncident] = Field(
        default_factory=list, description="every served incident, in order (several incidents)"
    )
    lang: Lang
    checked_at: str = Field(description="UTC, second precision, fixed length")
    padding: str = Field(description="random characters making every body the same size")


class SubmittedAnswer(BaseModel):
    """Private delivery (SELFCHECK_DELIVERY=private, or auto under attack): every valid query
    gets this one answer, padded to the same size; the outcome goes to the contact on file."""

    status: Literal["submitted"]
    incident: Incident
    message: str
    hint: str = Field(description="a message may land among spam")
    lang: Lang
    checked_at: str = Field(description="UTC, second precision, fixed length")
    padding: str = Field(description="random characters making every body the same size")


class ErrorBody(BaseModel):
    """Every error is one constant body per status, padded to the same size as answers."""

    error: str
    message: str
    padding: str
