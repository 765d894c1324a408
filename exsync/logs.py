"""Logging set-up shared by every exsync process: JSON lines for machines, text for a terminal.

`EXSYNC_LOG_FORMAT=json|text` chooses; unset, a terminal gets text and anything else (a
container's log, a pipe) gets one JSON object per line, formatted by python-json-logger. Ids
travel as fields, never only inside the message: code logs them with `extra={...}` under the
names in `FIELDS`, so a line about an event can be found by `event_id` whatever its wording.
gunicorn's error and access logs go through the same formatter (`gunicorn_logconfig`).
"""

import logging
import os
import sys
from collections.abc import Iterable, Mapping
from typing import IO, Any, cast

from pythonjsonlogger.json import JsonFormatter

from exsync.redact import RedactingFilter

__all__ = ["FIELDS", "LOG_FORMATS", "AccessLogFields", "configure_logging", "gunicorn_logconfig", "lean_log_records",
           "log_format", "make_formatter"]

LOG_FORMATS = ("json", "text")
# The fields exsync's log calls pass in `extra=`: what ties a line to an event, a delivery, an
# order or a product, and how it went.
FIELDS = ("event_id", "delivery_id", "webhook_id", "order_id", "sku", "subject", "queue", "attempt", "outcome",
          "topic", "status", "method", "path", "duration_seconds", "remote")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"
JSON_FIELDS = ("asctime", "levelname", "name", "process", "message")
JSON_RENAMED = {"asctime": "time", "levelname": "level", "name": "logger"}


def log_format(environ: Mapping[str, str] | None = None, stream: IO[str] | None = None) -> str:
    """json or text: EXSYNC_LOG_FORMAT, else text on a terminal and JSON everywhere else."""
    environ = os.environ if environ is None else environ
    chosen = (environ.get("EXSYNC_LOG_FORMAT") or "").strip().lower()
    if chosen in LOG_FORMATS:
        return chosen
    stream = sys.stderr if stream is None else stream
    return "text" if getattr(stream, "isatty", lambda: False)() else "json"


class _TextFormatter(logging.Formatter):
    """The text line, with the id fields a record carries appended as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(f"{name}={getattr(record, name)}" for name in FIELDS
                          if getattr(record, name, None) not in (None, ""))
        return f"{line} [{fields}]" if fields else line


def make_formatter(kind: str | None = None) -> logging.Formatter:
    """The formatter for `kind` (json or text; default: log_format())."""
    kind = kind or log_format()
    if kind == "json":
        # Every `extra=` field is emitted as a field of its own (python-json-logger's default).
        return JsonFormatter(list(JSON_FIELDS), rename_fields=dict(JSON_RENAMED), json_ensure_ascii=False)
    return _TextFormatter(TEXT_FORMAT)


def lean_log_records() -> None:
    """Stops logging from looking up, for every record, what no exsync format prints: the calling
    frame (a walk up the stack), the thread (under gevent a new greenlet's first record makes a
    dummy Thread object) and the multiprocessing name. The switches are logging's own (its HOWTO,
    "Optimization"); the webhook receiver writes an access-log line per delivery, where these
    were a tenth of the line's cost (py-spy). The process id stays: both formats print it.

    For a process's entry point only: the switches are the whole process's, and a host that prints
    file and line (pytest's captured-log format does) would print "(unknown file):0".
    """
    logging._srcfile = None  # documented in the HOWTO, though underscored
    logging.logThreads = False
    logging.logMultiprocessing = False


class _ExsyncHandler(logging.StreamHandler):
    """The root handler configure_logging adds: its class tells it from others' on the next call."""


def configure_logging(level: str = "INFO", *, kind: str | None = None, stream: IO[str] | None = None,
                      secrets: Iterable[str] = ()) -> str:
    """One handler on the root logger (replacing any from an earlier call), in the chosen format.

    `secrets`: literal values (exsync.redact.secrets_of(settings)) masked in every record; the filter
    sits on the handler, so records of every logger (pika's and urllib3's too) pass through it.
    """
    kind = kind or log_format(stream=stream)
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _ExsyncHandler)]:
        root.removeHandler(handler)
    handler = _ExsyncHandler(stream or sys.stderr)
    handler.setFormatter(make_formatter(kind))
    root.addHandler(handler)
    for each in root.handlers:
        # Every root handler, not only exsync's own (a test runner's or a site's may be there too):
        # records of every logger, pika's and urllib3's included, pass through one of them.
        for old in [f for f in each.filters if isinstance(f, RedactingFilter)]:
            each.removeFilter(old)
        each.addFilter(RedactingFilter(secrets=secrets))
    root.setLevel(level)
    # pika logs every reconnect attempt at WARNING with a traceback; ours say it once, briefly.
    logging.getLogger("pika").setLevel(logging.ERROR)
    return kind


class AccessLogFields(logging.Filter):
    """Copies gunicorn's access-log atoms onto the record as fields, WooCommerce's ids included."""

    ATOMS = {"method": "m", "path": "U", "status": "s", "remote": "h", "duration_seconds": "L",
             "delivery_id": "{x-wc-webhook-delivery-id}i", "webhook_id": "{x-wc-webhook-id}i",
             "topic": "{x-wc-webhook-topic}i"}

    def filter(self, record: logging.LogRecord) -> bool:
        # gunicorn hands its atoms as a mapping in place of the format arguments.
        atoms = (cast(Mapping[str, Any], record.args)
                 if isinstance(record.args, dict) or hasattr(record.args, "keys") else None)
        if atoms is None:
            return True
        for field, atom in self.ATOMS.items():
            value = atoms[atom]
            if value not in (None, "", "-"):
                setattr(record, field, value)
        if hasattr(record, "status") and isinstance(record.status, str) and record.status.isdigit():
            record.status = int(record.status)
        if hasattr(record, "duration_seconds"):
            record.duration_seconds = float(record.duration_seconds)
        return True


def gunicorn_logconfig(level: str = "INFO", kind: str | None = None, secrets: Iterable[str] = ()) -> dict[str, Any]:
    """gunicorn's `logconfig_dict`: its error and access logs in exsync's format, on stderr and stdout,
    with `secrets` (and every shape exsync.redact knows) masked."""
    formatter = {"()": "exsync.logs.make_formatter", "kind": kind or log_format()}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"access_fields": {"()": "exsync.logs.AccessLogFields"},
                    "redact": {"()": "exsync.redact.RedactingFilter", "secrets": tuple(secrets)}},
        "formatters": {"exsync": formatter},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "exsync", "filters": ["redact"],
                        "stream": "ext://sys.stderr"},
            "access": {"class": "logging.StreamHandler", "formatter": "exsync", "filters": ["access_fields", "redact"],
                       "stream": "ext://sys.stdout"},
        },
        "root": {"level": level, "handlers": ["console"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["console"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
        },
    }
