"""What the history's tests share: a throw-away PostgreSQL cluster on a free loopback port."""

from __future__ import annotations

import os

import pytest
from fixtures.postgres_server import PostgresServer, PostgresUnavailable


@pytest.fixture(scope="module")
def postgres():
    try:
        server = PostgresServer().start()
    except PostgresUnavailable as exc:
        if os.environ.get("SUPPORTDESK_TEST_SKIP_POSTGRES") == "1":
            pytest.skip(f"PostgreSQL not started: {exc}")
        pytest.fail(f"PostgreSQL could not be started for these tests: {exc}", pytrace=False)
    yield server
    server.stop()
