import pytest

from exsync.exchequer import connect
from tests.exchequer.conftest import dsn  # noqa: F401 (a fixture: an empty database on each backend in turn)


@pytest.fixture
def state_database(dsn):  # noqa: F811
    """A connected state database of this test's own, SQLite and PostgreSQL in turn."""
    with connect(dsn) as database:
        yield database
