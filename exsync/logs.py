"""Logging set-up shared by every exsync process: one line per record, key=value friendly."""

import logging

__all__ = ["configure_logging"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"


def configure_logging(level="INFO"):
    logging.basicConfig(level=level, format=LOG_FORMAT)
    # pika logs every reconnect attempt at WARNING with a traceback; ours say it once, briefly.
    logging.getLogger("pika").setLevel(logging.ERROR)
