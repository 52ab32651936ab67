"""PostgreSQL for the tests: the server on this machine (PERMITBUS_TEST_PG, default
postgresql://postgres@127.0.0.1:5432, trust), one database of its own per test, dropped after."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator

import psycopg

BASE = os.environ.get("PERMITBUS_TEST_PG", "postgresql://postgres@127.0.0.1:5432")


@contextlib.contextmanager
def database(prefix: str = "pbtest") -> Iterator[str]:
    """The URL of a new, empty database, dropped (its sessions ended) afterwards."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(f"{BASE}/postgres", autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{BASE}/{name}"
    finally:
        with psycopg.connect(f"{BASE}/postgres", autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def rows(url: str, where: str = "TRUE") -> dict[tuple[str, str, str], tuple]:
    """permitbus_decision as {key: (every column, payload as a dict)}."""
    with psycopg.connect(url) as c:
        got = c.execute(f"SELECT entitlement, subject_id, application_id, status, district, priority, version, "
                        f"decision_id, decided_at, payload FROM permitbus_decision WHERE {where}").fetchall()
    return {(e, s, a): (e, s, a, *rest) for e, s, a, *rest in got}


def scalar(url: str, query: str, *args):
    with psycopg.connect(url) as c:
        row = c.execute(query, args).fetchone()
    return row[0] if row else None
