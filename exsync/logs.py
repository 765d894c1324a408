"""Logging set-up shared by every exsync process: one line per record, key=value friendly."""

import logging

from exsync.redact import RedactingFilter

__all__ = ["configure_logging"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"


def configure_logging(level="INFO", *, secrets=()):
    """`secrets`: literal values (exsync.redact.secrets_of(settings)) masked in every record."""
    logging.basicConfig(level=level, format=LOG_FORMAT)
    for handler in logging.getLogger().handlers:
        # On the handler, so records of every logger (pika's and urllib3's too) pass through it.
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter(secrets=secrets))
    # pika logs every reconnect attempt at WARNING with a traceback; ours say it once, briefly.
    logging.getLogger("pika").setLevel(logging.ERROR)
