"""The list-validation attacker replays the export in the API's ISO form, as a script would:
every date form the builder reads (docs: D/M/YYYY, DD/MM/YYYY, ISO, a trailing time)."""

from __future__ import annotations

import pytest

from loadtests.export_dates import iso_date


@pytest.mark.parametrize(
    ("exported", "iso"),
    [
        ("2/3/1985", "1985-03-02"),
        ("20/05/1981", "1981-05-20"),
        ("20/05/1981 00:00:00", "1981-05-20"),
        ("1965-01-24", "1965-01-24"),
        ("1965-01-24 00:00:00", "1965-01-24"),
        ("00/00/1950", "1950-00-00"),
    ],
)
def test_export_dates_become_the_api_s_iso_form(exported: str, iso: str) -> None:
    assert iso_date(exported) == iso
