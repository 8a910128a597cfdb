"""An aiosmtpd handler for the tests: one JSON file per accepted message; refuses (451)
while a ``refuse`` file exists in its directory. Run as ``python -m aiosmtpd -c
tests.support.smtp_recorder.Recorder DIR``."""

from __future__ import annotations

import json
import uuid
from argparse import ArgumentParser
from pathlib import Path
from typing import Any


class Recorder:
    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    @classmethod
    def from_cli(cls, parser: ArgumentParser, *args: str) -> Recorder:
        if len(args) != 1:
            parser.error("Recorder needs one directory")
        return cls(args[0])

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if (self.directory / "refuse").exists():
            return "451 4.3.0 Try again later"
        record = {
            "from": envelope.mail_from,
            "to": list(envelope.rcpt_tos),
            "data": envelope.content.decode("utf-8", "replace"),
        }
        name = self.directory / f"{uuid.uuid4().hex}.json"
        tmp = name.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        tmp.rename(name)
        return "250 Message accepted for delivery"
