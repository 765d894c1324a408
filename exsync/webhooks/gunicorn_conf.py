"""gunicorn settings for `exsync webhook`, taken from exsync's configuration."""

from exsync.config import load_settings

_settings = load_settings()

bind = _settings.bind
workers = _settings.webhook_workers
# Threads let one worker wait on several broker confirms at once; they share one connection per
# worker (exsync.bus.SharedPublisher).
worker_class = "gthread"
threads = _settings.webhook_threads
timeout = 30
graceful_timeout = 30
keepalive = 5
# WooCommerce's bodies are bounded by MAX_CONTENT_LENGTH in the app; these bound the headers.
limit_request_line = 8190
limit_request_fields = 100


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
