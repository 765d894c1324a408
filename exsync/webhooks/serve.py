"""`exsync webhook`: runs gunicorn over the receiver, with metrics shared across workers."""

import os
import shutil
import sys
import tempfile
from typing import NoReturn

from exsync.config import Settings, child_environment

__all__ = ["TEMPORARY_METRICS_DIR_VARIABLE", "run_gunicorn", "gunicorn_command"]

# Set when run_gunicorn made the metrics directory itself (none was configured): gunicorn's
# arbiter removes that directory as it exits (exsync.webhooks.gunicorn_conf.on_exit).
TEMPORARY_METRICS_DIR_VARIABLE = "EXSYNC_TEMPORARY_METRICS_DIR"


def gunicorn_command(app: str = "exsync.webhooks.wsgi:app") -> list[str]:
    return [sys.executable, "-m", "gunicorn", "--config", "python:exsync.webhooks.gunicorn_conf", app]


def run_gunicorn(settings: Settings) -> NoReturn:
    """Replaces this process with gunicorn; the metrics directory is made fresh for it (and, when
    none is configured, made in the temporary directory and removed when gunicorn exits)."""
    temporary = settings.metrics_dir is None
    metrics_dir = settings.metrics_dir or tempfile.mkdtemp(prefix="exsync-metrics-")
    # Files left by an earlier run would be summed into this one's counters.
    shutil.rmtree(metrics_dir, ignore_errors=True)
    os.makedirs(metrics_dir, exist_ok=True)
    environment = child_environment(PROMETHEUS_MULTIPROC_DIR=metrics_dir)
    environment.pop(TEMPORARY_METRICS_DIR_VARIABLE, None)  # inherited from another run: not this one's
    if temporary:
        environment[TEMPORARY_METRICS_DIR_VARIABLE] = metrics_dir
    command = gunicorn_command()
    os.execvpe(command[0], command, environment)
