"""The WSGI entry point gunicorn loads in each worker."""

from exsync.config import load_settings
from exsync.logs import configure_logging
from exsync.redact import secrets_of
from exsync.webhooks.app import create_app_from_settings

_settings = load_settings()
configure_logging(_settings.log_level, secrets=secrets_of(_settings))
app = create_app_from_settings(_settings)
