"""Practice embed: a visitor opens a practice's own website, which includes our ``embed.js``;
the script frames ``/widget``, which loads its assets. No check is submitted: this is
the static traffic every page view of every practice site costs the service.
"""

from __future__ import annotations

from locust import FastHttpUser, between, task

from loadtests.config import load_config
from loadtests.scenarios.common import get_ok, page_with_assets, patient_networks

GROUP = "embed"


class PracticeEmbedUser(FastHttpUser):
    wait_time = between(0.5, 2)

    @task
    def page_view(self) -> None:
        optional = load_config().widget_optional
        headers = {
            "X-Forwarded-For": patient_networks().next(),
            # What a browser sends for a script and a frame requested by a practice's page.
            "Referer": "https://cabinet-exemple.test/",
        }
        get_ok(self, "/embed.js", headers, f"{GROUP}: GET /embed.js", optional)
        page_with_assets(self, "/widget", headers, GROUP, optional)
