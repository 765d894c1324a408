"""Liveness and readiness of a long-running process, served beside its metrics.

A process loop (the consume loop, capture, the reconciler) calls `Liveness.beat()` whenever it
makes progress, says how long it is about to wait normally, and names the oldest piece of work in
hand. `/healthz` fails once the loop has not come back within `stall_seconds` of when it should
have, or one piece of work has been running longer than that: a hung handler, a dead consume
thread, a query that never returns. Kubernetes then restarts the pod.

`/readyz` runs named checks (the broker, the database); each raises to say "not ready". Its body
names the failed check only: the error itself (which may carry a host or a vhost) goes to the log,
not to whoever can reach the port.

`serve_health(port, ...)` serves `/metrics`, `/healthz` and `/readyz` on one port, on threads.
"""

import logging
import socketserver
import threading
import time
import wsgiref.simple_server
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import prometheus_client

from exsync.schemas.config import DEFAULT_HEALTH_STALL_SECONDS

__all__ = ["DEFAULT_STALL_SECONDS", "HealthServer", "HeldCheck", "Liveness", "Readiness", "serve_health"]

log = logging.getLogger(__name__)

DEFAULT_STALL_SECONDS = DEFAULT_HEALTH_STALL_SECONDS
# How long a readiness check waits for an earlier one still in progress (under the probe's timeout).
DEFAULT_CHECK_WAIT_SECONDS = 2.0

# A WSGI application: (environ, start_response) -> the body's chunks.
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Liveness:
    """When the process loop last showed life, and how long it may be silent before it counts as stuck."""

    def __init__(self, *, stall_seconds: float = DEFAULT_STALL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_seconds = stall_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._due = clock() + stall_seconds
        self._busy_since: float | None = None

    def beat(self, *, waiting_seconds: float = 0.0, busy_since: float | None = None) -> None:
        """The loop made progress now; it may next wait `waiting_seconds` normally, and the oldest
        work in hand (a handler) started at `busy_since` (a `clock()` value) or none is running."""
        with self._lock:
            self._due = self._clock() + waiting_seconds + self.stall_seconds
            self._busy_since = busy_since

    def problem(self) -> str | None:
        """None while alive, else why not."""
        now = self._clock()
        with self._lock:
            due, busy_since = self._due, self._busy_since
        if busy_since is not None and now - busy_since > self.stall_seconds:
            return f"the work in hand has run {now - busy_since:.0f} s (over {self.stall_seconds:.0f} s)"
        if now > due:
            return f"the process loop has not come back for {now - due + self.stall_seconds:.0f} s"
        return None


class Readiness:
    """Named checks, each a callable that raises when the process cannot do its work."""

    def __init__(self, checks: Mapping[str, Callable[[], object]] | None = None) -> None:
        self.checks = dict(checks or {})

    def add(self, name: str, check: Callable[[], object]) -> "Readiness":
        self.checks[name] = check
        return self

    def failures(self) -> list[str]:
        """The names of the checks that failed (their errors are logged, not returned)."""
        failed = []
        for name, check in self.checks.items():
            try:
                check()
            except Exception as error:  # any failure means not ready; the probe must answer, not raise
                log.warning("not ready: %s: %s", name, error)
                failed.append(name)
        return failed


class HeldCheck:
    """A readiness check on a connection of its own: opened on the first probe, kept between probes
    (no connection churn every few seconds), dropped after a failure so the next probe reopens it."""

    def __init__(self, *, open: Callable[[], Any], probe: Callable[[Any], object], close: Callable[[Any], object],
                 wait_seconds: float = DEFAULT_CHECK_WAIT_SECONDS) -> None:
        self._open = open
        self._probe = probe
        self._close = close
        self._lock = threading.Lock()  # probes may overlap; a connection serves one thread at a time
        self._wait_seconds = wait_seconds
        self._held: Any = None

    def __call__(self) -> None:
        # A probe still waiting on a dead server (a login timeout) holds the lock: the next ones
        # answer "not ready" at once instead of piling up behind it.
        if not self._lock.acquire(timeout=self._wait_seconds):
            raise TimeoutError("an earlier check is still waiting for an answer")
        try:
            self._check()
        finally:
            self._lock.release()

    def _check(self) -> None:
        if self._held is None:
            self._held = self._open()
        try:
            self._probe(self._held)
        except Exception:
            held, self._held = self._held, None
            try:
                self._close(held)
            except Exception as error:  # closing a broken connection: nothing left to save
                log.debug("closing a failed check's connection: %s", error)
            raise


def _text(start_response: Callable[..., object], status: str, message: str) -> list[bytes]:
    body = (message + "\n").encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]


def health_app(*, liveness: Liveness | None = None, readiness: Readiness | None = None,
               registry: prometheus_client.CollectorRegistry = prometheus_client.REGISTRY) -> WsgiApp:
    """The WSGI app: /healthz, /readyz, and /metrics (everything else is Prometheus's app)."""
    metrics_app = prometheus_client.make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            problem = liveness.problem() if liveness is not None else None
            if problem:
                return _text(start_response, "503 Service Unavailable", f"stuck: {problem}")
            return _text(start_response, "200 OK", "ok")
        if path == "/readyz":
            failed = readiness.failures() if readiness is not None else []
            if failed:
                return _text(start_response, "503 Service Unavailable", f"not ready: {', '.join(failed)}")
            return _text(start_response, "200 OK", "ready")
        return metrics_app(environ, start_response)

    return app


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds would drown the process's own log."""


class _ThreadingServer(socketserver.ThreadingMixIn, wsgiref.simple_server.WSGIServer):
    daemon_threads = True


class HealthServer:
    """The health and metrics port of one process, served on daemon threads."""

    def __init__(self, *, port: int, app: WsgiApp, host: str = "0.0.0.0") -> None:
        self._server = wsgiref.simple_server.make_server(host, port, app, server_class=_ThreadingServer,
                                                         handler_class=_QuietHandler)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="health-server", daemon=True)

    def start(self) -> "HealthServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve_health(port: int, *, liveness: Liveness | None = None, readiness: Readiness | None = None,
                 registry: prometheus_client.CollectorRegistry = prometheus_client.REGISTRY,
                 host: str = "0.0.0.0") -> HealthServer:
    """Starts serving /metrics, /healthz and /readyz on `port`; returns the HealthServer."""
    return HealthServer(port=port, host=host,
                        app=health_app(liveness=liveness, readiness=readiness, registry=registry)).start()
