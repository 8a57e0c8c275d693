"""Fixtures for the store tests: a migrated store on each backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from formicary.ledger.store import Store, open_store


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A migrated, empty store (SQLite in tmp_path, or a fresh PostgreSQL database)."""
    s = open_store(database_url)
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def store_factory(database_url_factory: Callable[[], str]) -> Iterator[Callable[[], Store]]:
    """Makes a new migrated, empty store per call (e.g. one per hypothesis example)."""
    opened: list[Store] = []

    def new_store() -> Store:
        s = open_store(database_url_factory())
        s.migrate()
        opened.append(s)
        return s

    yield new_store
    for s in opened:
        s.close()
