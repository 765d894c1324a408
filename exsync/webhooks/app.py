"""The Flask app: thin views over the Receiver, plus health, readiness and metrics.

Probes never wait on the broker: /healthz answers from the process alone and /readyz from what the
publisher already knows (see `readiness_reason`). Deliveries take a bounded share of a
worker's connections at once (`DeliverySlots`), so some are always left for probes; one delivery
waits at most the publisher's publish timeout (webhook.delivery_timeout_seconds).
"""

import logging
import threading
import time
from typing import Any, Protocol

import prometheus_client
from flask import Flask, Response, abort, request
from prometheus_client import multiprocess
from werkzeug.exceptions import RequestEntityTooLarge

from exsync.bus import BusError
from exsync.metrics import Metrics
from exsync.webhooks.receiver import Receiver

__all__ = ["DEFAULT_PROBE_WAIT_SECONDS", "INTERNAL_PATHS", "DeliverySlots", "create_app",
           "liveness_reason", "readiness_reason"]

log = logging.getLogger(__name__)

# Answered only on the internal port when there is one: what the broker is doing and the metrics
# are for the cluster, not for whoever reaches the public webhook URL.
INTERNAL_PATHS = ("/metrics", "/readyz")
# The longest /readyz waits for a connect it started itself (a probe's timeout is 1 s by default).
DEFAULT_PROBE_WAIT_SECONDS = 0.5


class _Checked(Protocol):
    """What the probes ask of a publisher: check() (Publisher, SharedPublisher), readiness() if it has one."""

    def check(self) -> None: ...


def liveness_reason() -> str | None:
    """Why this process should be restarted, or None: it answers, so it lives (nothing it waits on
    outside itself, such as the broker, may make it look dead)."""
    return None


def readiness_reason(publisher: _Checked, *, wait_seconds: float = DEFAULT_PROBE_WAIT_SECONDS) -> str | None:
    """Why this process should get no deliveries now, or None: not connected to the broker, or its
    confirms overdue (a stalled broker). Answers within `wait_seconds` whatever the broker does."""
    readiness = getattr(publisher, "readiness", None)
    if readiness is None:  # a publisher without readiness (the blocking Publisher): ask it directly
        try:
            publisher.check()
        except BusError as error:
            return f"broker unreachable: {error}"
        return None
    return readiness(wait_seconds=wait_seconds)


class DeliverySlots:
    """At most `slots` deliveries at once, and at most `waiters` more waiting (up to `wait_seconds`)
    for one to free; any further delivery is refused at once rather than hold a connection."""

    def __init__(self, *, slots: int, waiters: int, wait_seconds: float) -> None:
        self._free = threading.BoundedSemaphore(slots)
        self._lock = threading.Lock()
        self._waiting = 0
        self.waiters = waiters
        self.wait_seconds = wait_seconds

    def acquire(self) -> bool:
        """True with a slot taken (release() it), False when the delivery is to be refused."""
        if self._free.acquire(blocking=False):
            return True
        with self._lock:
            if self._waiting >= self.waiters:
                return False
            self._waiting += 1
        try:
            return self._free.acquire(timeout=self.wait_seconds)
        finally:
            with self._lock:
                self._waiting -= 1

    def release(self) -> None:
        self._free.release()


def _local_port(environ: dict[str, Any]) -> int | None:
    """The port the request came in on: gunicorn's socket (SERVER_PORT follows the Host header)."""
    sock = environ.get("gunicorn.socket")
    return sock.getsockname()[1] if sock is not None else None


def create_app(*, receiver: Receiver, publisher: _Checked, max_body_bytes: int, metrics: Metrics | None = None,
               metrics_dir: str | None = None, slots: DeliverySlots | None = None,
               internal_port: int | None = None) -> Flask:
    """The WSGI app; everything it needs is handed in, so tests build it with real parts.

    `slots`: a DeliverySlots bounding the deliveries handled at once (None: no bound); a delivery
    it refuses is answered 503 at once rather than take a connection a probe needs. With
    `internal_port`, INTERNAL_PATHS answer 404 on every other port.
    """
    metrics = metrics or Metrics()
    app = Flask("exsync.webhooks")
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes

    @app.before_request
    def internal_only() -> None:
        if internal_port is not None and request.path in INTERNAL_PATHS and \
                _local_port(request.environ) != internal_port:
            abort(404)

    # OPTIONS is no method of these routes: Flask would answer it 200 on its own.
    @app.post("/webhooks/woocommerce", provide_automatic_options=False)
    def woocommerce() -> Response:
        # Timed by hand rather than with Metrics.timed(): a generator context per delivery is CPU on
        # the hot path, and the outcome label is known only at the end.
        started = time.perf_counter()
        if slots is not None and not slots.acquire():
            metrics.inc("webhook_requests", topic="unknown", outcome="busy")
            return _text(503, "too many deliveries at once: it is not stored; deliver it again")
        try:
            body = request.get_data(cache=False)  # over MAX_CONTENT_LENGTH: too_large() below answers
            if request.content_length is None and len(body) >= max_body_bytes and \
                    request.environ["wsgi.input"].read(1):
                # A chunked body is cut at the limit by werkzeug, not refused: what follows says it was longer.
                raise RequestEntityTooLarge()
            outcome = receiver.receive(headers=request.headers, body=body)
        finally:
            if slots is not None:
                slots.release()
        metrics.observe("webhook_request_duration_seconds", time.perf_counter() - started, outcome=outcome.outcome)
        return _text(outcome.status, outcome.message)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error: RequestEntityTooLarge) -> Response:
        metrics.inc("webhook_requests", topic="unknown", outcome="too_large")
        log.warning("webhook refused: body of %s bytes over the %d-byte limit", request.content_length, max_body_bytes)
        return _text(413, f"the body is larger than {max_body_bytes} bytes")

    @app.get("/healthz", provide_automatic_options=False)
    def healthz() -> Response:
        reason = liveness_reason()
        return _text(503, reason) if reason else _text(200, "ok")

    @app.get("/readyz", provide_automatic_options=False)
    def readyz() -> Response:
        reason = readiness_reason(publisher)
        if reason:
            # The reason may name the broker's host: it is logged, the answer only says what is wrong.
            log.warning("not ready: %s", reason)
            return _text(503, "broker unreachable" if "not confirmed" not in reason else "broker not confirming")
        return _text(200, "ready")

    @app.get("/metrics", provide_automatic_options=False)
    def metrics_view() -> Response:
        if metrics_dir:
            registry = prometheus_client.CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=metrics_dir)
        else:
            registry = prometheus_client.REGISTRY
        return Response(prometheus_client.generate_latest(registry), mimetype=prometheus_client.CONTENT_TYPE_LATEST)

    return app


def _text(status: int, message: str) -> Response:
    return Response(message + "\n", status=status, mimetype="text/plain")
