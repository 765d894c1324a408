import pytest

from exsync.exchequer import connect


@pytest.fixture(params=["sqlite", "postgresql"])
def state_dsn(request, tmp_path):
    """A state database of this test's own: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.db"
    return request.getfixturevalue("pg_odbc_dsn")


@pytest.fixture
def state_database(state_dsn):
    with connect(state_dsn) as database:
        yield database
