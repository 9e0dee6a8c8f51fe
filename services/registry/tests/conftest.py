"""Fixtures of the registry's tests."""

import pytest

from tmx_registry.db.migrate import upgrade
from tmx_registry.repository import Repository, make_engine


@pytest.fixture
def repo(database_url):
    """A Repository on a freshly migrated database (SQLite and PostgreSQL: `database_url` is parametrized)."""
    upgrade(database_url)
    engine = make_engine(database_url)
    yield Repository(engine)
    engine.dispose()
