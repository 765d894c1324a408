"""The WSGI entry point gunicorn loads in each worker."""

import logging

from exsync.config import load_settings
from exsync.logs import configure_logging, lean_log_records
from exsync.redact import secrets_of
from exsync.wiring import webhook_app

_settings = load_settings()
# Under gunicorn the root logger is already set up (secrets masked) by gunicorn_conf's logconfig_dict.
if not logging.getLogger().handlers:
    configure_logging(_settings.log_level, secrets=secrets_of(_settings))
    lean_log_records()
app = webhook_app(_settings)
