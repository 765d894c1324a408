"""The Flask app: thin views over the Receiver, plus health, readiness and metrics."""

import logging
import time

import prometheus_client
from flask import Flask, Response, abort, request
from prometheus_client import multiprocess
from werkzeug.exceptions import RequestEntityTooLarge

from exsync.bus import BusError, SharedPublisher, Topology
from exsync.metrics import Metrics, default_metrics
from exsync.webhooks.receiver import Receiver

__all__ = ["INTERNAL_PATHS", "create_app", "create_app_from_settings"]

log = logging.getLogger(__name__)

# Answered only on the internal port when there is one: what the broker is doing and the metrics
# are for the cluster, not for whoever reaches the public webhook URL.
INTERNAL_PATHS = ("/metrics", "/readyz")


def _local_port(environ):
    """The port the request came in on: gunicorn's socket (SERVER_PORT follows the Host header)."""
    sock = environ.get("gunicorn.socket")
    return sock.getsockname()[1] if sock is not None else None


def create_app(*, receiver, publisher, max_body_bytes, metrics=None, metrics_dir=None, internal_port=None):
    """The WSGI app; everything it needs is handed in, so tests build it with real parts.

    With `internal_port`, INTERNAL_PATHS answer 404 on every other port."""
    metrics = metrics or Metrics()
    app = Flask("exsync.webhooks")
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes

    @app.before_request
    def internal_only():
        if internal_port is not None and request.path in INTERNAL_PATHS and \
                _local_port(request.environ) != internal_port:
            abort(404)

    @app.post("/webhooks/woocommerce")
    def woocommerce():
        started = time.perf_counter()
        body = request.get_data(cache=False)  # over MAX_CONTENT_LENGTH: too_large() below answers
        outcome = receiver.receive(headers=request.headers, body=body)
        metrics.observe("webhook_request_duration_seconds", time.perf_counter() - started, outcome=outcome.outcome)
        return _text(outcome.status, outcome.message)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error):
        metrics.inc("webhook_requests", topic="unknown", outcome="too_large")
        log.warning("webhook refused: body of %s bytes over the %d-byte limit", request.content_length, max_body_bytes)
        return _text(413, f"the body is larger than {max_body_bytes} bytes")

    @app.get("/healthz")
    def healthz():
        return _text(200, "ok")

    @app.get("/readyz")
    def readyz():
        try:
            publisher.check()
        except BusError as error:
            log.warning("not ready: %s", error)  # the error names the broker's host: logged, not answered
            return _text(503, "broker unreachable")
        return _text(200, "ready")

    @app.get("/metrics")
    def metrics_view():
        if metrics_dir:
            registry = prometheus_client.CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=metrics_dir)
        else:
            registry = prometheus_client.REGISTRY
        return Response(prometheus_client.generate_latest(registry), mimetype=prometheus_client.CONTENT_TYPE_LATEST)

    return app


def _text(status, message):
    return Response(message + "\n", status=status, mimetype="text/plain")


def create_app_from_settings(settings):
    """The app as `exsync webhook` serves it."""
    metrics = default_metrics()
    publisher = SharedPublisher(url=settings.amqp_url, topology=Topology.from_config(settings.config),
                                metrics=metrics)
    receiver = Receiver(secrets=settings.webhook_secrets, publisher=publisher, metrics=metrics)
    return create_app(
        receiver=receiver,
        publisher=publisher,
        max_body_bytes=settings.config["webhook"]["max_body_bytes"],
        metrics=metrics,
        metrics_dir=settings.metrics_dir,
        internal_port=int(settings.metrics_bind.rpartition(":")[2]) if settings.metrics_bind else None,
    )
