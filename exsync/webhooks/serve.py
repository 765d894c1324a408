"""`exsync webhook`: runs gunicorn over the receiver, with metrics shared across workers."""

import os
import shutil
import sys
import tempfile
from typing import NoReturn

from exsync.config import Settings, child_environment

__all__ = ["run_gunicorn", "gunicorn_command"]


def gunicorn_command(app: str = "exsync.webhooks.wsgi:app") -> list[str]:
    return [sys.executable, "-m", "gunicorn", "--config", "python:exsync.webhooks.gunicorn_conf", app]


def run_gunicorn(settings: Settings) -> NoReturn:
    """Replaces this process with gunicorn; the metrics directory is made fresh for it."""
    metrics_dir = settings.metrics_dir or tempfile.mkdtemp(prefix="exsync-metrics-")
    # Files left by an earlier run would be summed into this one's counters.
    shutil.rmtree(metrics_dir, ignore_errors=True)
    os.makedirs(metrics_dir, exist_ok=True)
    environment = child_environment(PROMETHEUS_MULTIPROC_DIR=metrics_dir)
    command = gunicorn_command()
    os.execvpe(command[0], command, environment)
