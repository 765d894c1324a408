"""Fixtures for the real services: RabbitMQ (a vhost per test) and PostgreSQL via pyodbc."""

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.parse

import pytest

from tests.support.database import fresh_pg_database
from tests.support.net import port_answers
from tests.support.rabbit import TestVhost, with_vhost
from tests.support.rabbit_cluster import RabbitCluster

DEFAULT_TEST_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
# How long the machine's broker may take to open a connection on the tests' vhost before it counts
# as not answering (a healthy one takes milliseconds).
BROKER_HANDSHAKE_SECONDS = 15
PG_ODBC_DRIVER = "PostgreSQL Unicode"


def pytest_addoption(parser):
    parser.addoption("--chaos", action="store_true",
                     help="run the full fault scenarios of tests/reliability (what `make chaos` runs)")


def pytest_collection_modifyitems(config, items):
    """Tests marked `chaos` (minutes each, heavy) run only when asked: `make chaos` (pytest --chaos)."""
    if config.getoption("--chaos"):
        return
    skip = pytest.mark.skip(reason="a full fault scenario: `make chaos` runs it")
    for item in items:
        if item.get_closest_marker("chaos") is not None:
            item.add_marker(skip)


def _unavailable(what):
    """No service: fail under CI (a skipped suite proves nothing), skip on a developer's machine."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI and did not answer", pytrace=False)
    pytest.skip(f"{what} not available")


def _test_vhost_name():
    # Developers running suites side by side on one machine each name their own.
    return os.environ.get("EXSYNC_TEST_VHOST") or TestVhost.NAME


def _broker_answers(url):
    """True when the broker at `url` makes (or already has) the tests' vhost and opens a connection
    on it within BROKER_HANDSHAKE_SECONDS. A broker can accept TCP and still never finish an AMQP
    handshake (seen here: a vhost supervisor stuck over its file-handle limit); tests against it would
    only time out, one by one."""
    import pika

    try:
        TestVhost(base_url=url, name=_test_vhost_name()).ensure()
    except (subprocess.SubprocessError, OSError):
        return False
    parameters = pika.URLParameters(with_vhost(url, _test_vhost_name()))
    parameters.connection_attempts = 1
    parameters.socket_timeout = parameters.stack_timeout = BROKER_HANDSHAKE_SECONDS
    try:
        pika.BlockingConnection(parameters).close()
    except Exception:  # any failure to connect means the same here: not this broker
        return False
    return True


@pytest.fixture(autouse=True)
def _logging_switches_restored():
    """exsync.cli.main (called in-process by some tests) turns off logging's caller and thread
    lookups for its process; pytest's captured-log lines print file and line, so they come back."""
    saved = logging._srcfile, logging.logThreads, logging.logMultiprocessing
    yield
    logging._srcfile, logging.logThreads, logging.logMultiprocessing = saved


@pytest.fixture(scope="session")
def amqp_base_url():
    url = os.environ.get("EXSYNC_AMQP_URL") or DEFAULT_TEST_AMQP_URL
    parts = urllib.parse.urlsplit(url)
    if port_answers(parts.hostname, parts.port or 5672):
        if os.environ.get("EXSYNC_AMQP_URL") or _broker_answers(url):
            yield url, None
            return
        # The machine's broker answers TCP but not AMQP: a node of the tests' own instead, never
        # touching the shared one (which must not be stopped or reconfigured).
        print(f"\nRabbitMQ at {parts.hostname}:{parts.port or 5672} does not complete a handshake within "
              f"{BROKER_HANDSHAKE_SECONDS} s: the tests start a node of their own", file=sys.stderr)
        node = RabbitCluster(directory=tempfile.mkdtemp(prefix="exsync-test-rabbit-"), size=1,
                             prefix="exsync-tests")
        try:
            node.start()
        except (subprocess.SubprocessError, RuntimeError, OSError) as error:
            node.stop()
            _unavailable(f"RabbitMQ (the machine's does not answer AMQP; a node of the tests' own: {error})")
        try:
            yield node.url.rsplit("/", 1)[0] + "/", node
        finally:
            node.stop()
        return
    if shutil.which("docker") and not os.environ.get("EXSYNC_AMQP_URL"):
        try:
            from testcontainers.rabbitmq import RabbitMqContainer

            container = RabbitMqContainer("rabbitmq:3.13").start()
        except Exception as error:  # no engine behind the client: fall through
            container = None
            reason = str(error)
        if container is not None:
            host, port = container.get_container_host_ip(), container.get_exposed_port(5672)
            try:
                yield f"amqp://guest:guest@{host}:{port}/", container
            finally:
                container.stop()
            return
        _unavailable(f"RabbitMQ (testcontainers: {reason})")
    _unavailable(f"RabbitMQ at {parts.hostname}:{parts.port or 5672}")


@pytest.fixture(scope="session")
def test_vhost(amqp_base_url):
    base, container = amqp_base_url
    run = None
    if isinstance(container, RabbitCluster):
        def run(*args):
            return container.ctl(container.nodes[0], "-q", *args)
    elif container is not None:
        def run(*args):
            code, output = container.exec(["rabbitmqctl", "-q", *args])
            assert code == 0, output
            return output.decode()
    return TestVhost(base_url=base, run=run, name=_test_vhost_name()).ensure()


@pytest.fixture
def amqp_url(test_vhost):
    """A URL on the tests' own vhost, empty when the test starts and emptied when it ends."""
    test_vhost.empty()
    yield test_vhost.url
    test_vhost.empty()


@pytest.fixture(scope="session")
def pg_server():
    host, port = "127.0.0.1", 5432
    if not port_answers(host, port):
        _unavailable("PostgreSQL at 127.0.0.1:5432")
    try:
        import pyodbc
    except ImportError as error:
        pytest.fail(f"pyodbc does not import: {error}")
    if PG_ODBC_DRIVER not in pyodbc.drivers():
        _unavailable(f"ODBC driver {PG_ODBC_DRIVER!r} (Debian package odbc-postgresql)")
    return f"Driver={{{PG_ODBC_DRIVER}}};Server={host};Port={port};Uid=postgres;"


@pytest.fixture
def pg_odbc_dsn(pg_server):
    """An ODBC connection string to a fresh PostgreSQL database of this test's own."""
    with fresh_pg_database(pg_server) as dsn:
        yield dsn
