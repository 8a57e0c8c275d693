"""A throw-away PostgreSQL database for a benchmark run: created fresh, dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

__all__ = ["PostgresUnavailable", "temporary_database"]


class PostgresUnavailable(Exception):
    """The PostgreSQL server for the benchmark cannot be reached."""


@contextmanager
def temporary_database(server_url: str) -> Iterator[str]:
    """Yield the URL of a new empty database on the server of `server_url`."""
    import psycopg

    name = f"formicary_bench_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(server_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as error:
        raise PostgresUnavailable(f"cannot reach PostgreSQL at {server_url}: {error}") from error
    parts = urlsplit(server_url)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
