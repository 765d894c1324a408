"""Fixtures: an Exchequer-shaped company on SQLite and on PostgreSQL (pyodbc + psqlODBC)."""

import pytest

from exsync.exchequer import connect, init_schema, seed

SMALL_SEED = {"items": 60, "locations": 3, "boms": 6, "accounts": 30}


@pytest.fixture
def sqlite_dsn(tmp_path):
    return f"sqlite:///{tmp_path}/exchequer.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def dsn(request, tmp_path):
    """The DSN of an empty database of this test's own, on each backend in turn."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/exchequer.db"
    return request.getfixturevalue("pg_odbc_dsn")


@pytest.fixture
def database(dsn):
    """A connected company with its tables created."""
    with connect(dsn) as db:
        init_schema(db)
        yield db


@pytest.fixture
def seeded(database):
    seed(database, **SMALL_SEED)
    return database

