"""Serving the sandbox shop over real HTTP (or HTTPS), in-process on a thread or as `exsync sandbox`."""

import logging
import threading

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from exsync.sandbox.app import LoggedRequest, SandboxApp
from exsync.sandbox.shop import SandboxShop
from exsync.sandbox.workers import WorkerPool

__all__ = ["DEFAULT_HOST", "SandboxServer"]

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
# How often the serving thread looks for a shutdown request: short, so tests stop servers quickly.
POLL_SECONDS = 0.05


class _QuietHandler(WSGIRequestHandler):
    """Keeps werkzeug's per-request access log out of test and demo output."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.debug("%s %s %s", self.command, self.path, code)


class SandboxServer:
    """A sandbox shop listening on `host:port` (0 picks a free port); a context manager.

    Pass `ssl_context=(cert_file, key_file)` to serve HTTPS, where WooCommerce takes Basic auth, and
    `workers=K` to serve at most K requests at once (a host's PHP-FPM pool; the rest wait).
    """

    def __init__(self, *, shop: SandboxShop | None = None, host: str = DEFAULT_HOST, port: int = 0,
                 ssl_context: tuple[str, str] | None = None, link_base_url: str | None = None,
                 workers: int | None = None) -> None:
        self.shop = shop or SandboxShop()
        # The host's PHP workers (None: as many as ask, the default); requests beyond them queue.
        self.workers = WorkerPool(workers=workers)
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.link_base_url = link_base_url
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._app: SandboxApp | None = None

    @property
    def request_log(self) -> list[LoggedRequest]:
        """The requests that arrived, oldest first (`LoggedRequest`s)."""
        return list(self._app.request_log) if self._app is not None else []

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def _bind(self) -> BaseWSGIServer:
        app = self._app = SandboxApp(shop=self.shop, link_base_url=self.link_base_url, workers=self.workers)
        bound = self._server = make_server(self.host, self.port, app, threaded=True, request_handler=_QuietHandler,
                                           ssl_context=self.ssl_context)
        self.port = bound.server_port
        self.shop.home_url = self.url + "/"
        return bound

    def start(self) -> "SandboxServer":
        """Binds, points the shop's home URL here, and serves on a daemon thread."""
        bound = self._bind()
        thread = self._thread = threading.Thread(target=bound.serve_forever, kwargs={"poll_interval": POLL_SECONDS},
                                                 name="sandbox-shop", daemon=True)
        thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            if self._thread is not None:
                self._server.shutdown()
                self._thread.join(timeout=5)
            self._server.server_close()
            self._server = None
        self.shop.deliverer.stop()

    def __enter__(self) -> "SandboxServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
