"""gunicorn settings for `exsync webhook`, taken from exsync's configuration."""

import os
import shutil
from typing import Any

from exsync.config import WEBHOOK_PROBE_CONNECTIONS, load_settings
from exsync.logs import gunicorn_logconfig, lean_log_records
from exsync.redact import secrets_of
from exsync.webhooks.serve import TEMPORARY_METRICS_DIR_VARIABLE

_settings = load_settings()

# The public port (webhooks, /healthz) and, when set, the internal one (/metrics, /readyz).
bind = [_settings.bind] + ([_settings.metrics_bind] if _settings.metrics_bind else [])
workers = _settings.webhook_workers
# Each request waits on its broker confirm; gevent lets one worker wait on many at once, all sharing
# one connection (exsync.bus.SharedPublisher). Measured against gthread workers (bench/): the same
# work costs less CPU per request, as greenlets hand off without fighting over the GIL.
worker_class = "gevent"
# Deliveries take at most webhook_connections of them, and as many more waiting for one; the rest
# are for probes and scrapes (exsync.webhooks.app.DeliverySlots).
worker_connections = 2 * _settings.webhook_connections + WEBHOOK_PROBE_CONNECTIONS
# gunicorn 27's control socket is not used by exsync; its default path ($HOME/.gunicorn) is shared by
# every receiver on a host and missing on a read-only root filesystem. Older gunicorns ignore this.
control_socket_disable = True
timeout = 30
graceful_timeout = 30
# No keep-alive: a connection is held only for its request, so clients that keep sending on theirs
# cannot hold every slot a worker has and starve new connections (probes included). WooCommerce
# opens a connection per delivery anyway.
keepalive = 0
# WooCommerce's bodies are bounded by MAX_CONTENT_LENGTH in the app; these bound the headers.
limit_request_line = 8190
limit_request_fields = 100
# gunicorn's own lines and its access log (one line per delivery, with WooCommerce's delivery and
# webhook ids as fields) in exsync's format: JSON lines in a container, text on a terminal.
logconfig_dict = gunicorn_logconfig(_settings.log_level, secrets=secrets_of(_settings))
# Read in the arbiter before it forks: every worker inherits the switches.
lean_log_records()


# gunicorn's hook, passed its Arbiter and Worker (gunicorn ships no types).
def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    # A metrics directory `exsync webhook` made for this run alone goes with its last arbiter. After
    # a USR2 upgrade two arbiters share it (the new one inherits the environment): while the other
    # still runs (reexec_pid: the new one, master_pid: the old one), it is left to that one.
    # An arbiter that never halts (killed, or refused its port at start) leaves it behind.
    made = os.environ.get(TEMPORARY_METRICS_DIR_VARIABLE)
    if server.reexec_pid or server.master_pid:
        return
    if made and made == os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        shutil.rmtree(made, ignore_errors=True)
