"""Fixtures for the shop side: a sandbox shop served over real HTTP, a client for it, a receiving endpoint."""

import collections
import threading

import pytest
from werkzeug.datastructures import Headers
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from exsync.metrics import Metrics
from exsync.sandbox import SandboxServer, SandboxShop
from exsync.woo import WooClient


class RecordingMetrics(Metrics):
    """Keeps what was recorded, so a test can count requests by endpoint."""

    def __init__(self):
        self.counters = collections.Counter()
        self.gauges = {}
        self.observations = collections.defaultdict(list)

    def inc(self, name, amount=1, **labels):
        self.counters[(name, tuple(sorted(labels.items())))] += amount

    def observe(self, name, value, **labels):
        self.observations[(name, tuple(sorted(labels.items())))].append(value)

    def set(self, name, value, **labels):
        self.gauges[(name, tuple(sorted(labels.items())))] = value

    def count(self, name, **labels):
        wanted = set(labels.items())
        return sum(value for (metric, key), value in self.counters.items() if metric == name and wanted <= set(key))


class _Quiet(WSGIRequestHandler):
    def log_request(self, code="-", size="-"):
        pass


class Receiver:
    """An HTTP endpoint that records every POST (raw body and headers) and answers `status`."""

    def __init__(self):
        self.status = 200
        self.requests = []
        self._condition = threading.Condition()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True, request_handler=_Quiet)
        self.url = f"http://127.0.0.1:{self._server.server_port}/webhooks/woocommerce"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def _app(self, environ, start_response):
        request = Request(environ)
        with self._condition:
            self.requests.append((Headers(list(request.headers.items())), request.get_data()))
            self._condition.notify_all()
        return Response("ok", status=self.status)(environ, start_response)

    @property
    def deliveries(self):
        """Signed deliveries only (pings carry no topic)."""
        return [(headers, body) for headers, body in self.requests if headers.get("X-WC-Webhook-Topic")]

    def stop(self):
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def shop():
    return SandboxShop()


@pytest.fixture
def credentials(shop):
    return shop.add_credentials()


@pytest.fixture
def sandbox(shop, credentials):
    with SandboxServer(shop=shop) as server:
        yield server


@pytest.fixture
def metrics():
    return RecordingMetrics()


@pytest.fixture
def client(sandbox, credentials, metrics):
    with WooClient(url=sandbox.url, consumer_key=credentials.consumer_key, consumer_secret=credentials.consumer_secret,
                   requests_per_second=500, backoff_initial_seconds=0.01, backoff_max_seconds=0.05,
                   metrics=metrics) as woo:
        yield woo


@pytest.fixture
def receiver():
    endpoint = Receiver()
    yield endpoint
    endpoint.stop()
