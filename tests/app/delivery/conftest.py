"""Shared by the delivery tests: one contact dataset, one Redis with ACL users, one SMTP sink."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.delivery import (
    AclRedis,
    ContactDataset,
    SmtpSink,
    acl_redis,
    make_contact_dataset,
    smtp_sink,
)


@pytest.fixture(scope="session")
def contacts(tmp_path_factory: pytest.TempPathFactory) -> ContactDataset:
    return make_contact_dataset(tmp_path_factory.mktemp("contacts"))


@pytest.fixture(scope="session")
def outbox_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AclRedis]:
    with acl_redis(tmp_path_factory.mktemp("outbox-redis"), aof=True) as server:
        yield server


@pytest.fixture(scope="session")
def smtp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpSink]:
    with smtp_sink(tmp_path_factory.mktemp("smtp")) as sink:
        yield sink
