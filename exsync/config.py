"""Configuration: the one module that reads the environment and the YAML file.

Endpoints and secrets come from the environment; rules and mappings from one YAML file
(`EXSYNC_CONFIG`), validated by `exsync.schemas.config`. The broker, the databases and the shop
have no defaults: a command that needs one that is not set stops with an error naming the variable
(`Settings.require`), rather than quietly using a local broker or a demo database. The demo and the
tests set what they use.
"""

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import yaml

from exsync.errors import ConfigError
from exsync.schemas.config import default_config, validate_config
from exsync.schemas.sections import Config

__all__ = ["Settings", "load_settings", "child_environment", "DEFAULT_BIND", "ENDPOINT_VARIABLES",
           "WEBHOOK_PROBE_CONNECTIONS"]

DEFAULT_BIND = "0.0.0.0:8000"
DEFAULT_WEBHOOK_WORKERS = 2
DEFAULT_WEBHOOK_CONNECTIONS = 16
# Connections each webhook worker keeps beyond EXSYNC_WEBHOOK_CONNECTIONS (the deliveries it takes
# at once) for probes and scrapes, so deliveries waiting on a broker never hold every one.
WEBHOOK_PROBE_CONNECTIONS = 4
DEFAULT_LOG_LEVEL = "INFO"
# The variables naming what exsync talks to -> the Settings field each fills; none has a default.
ENDPOINT_VARIABLES = {
    "EXSYNC_AMQP_URL": "amqp_url",
    "EXSYNC_EXCHEQUER_DSN": "exchequer_dsn",
    "EXSYNC_STATE_DSN": "state_dsn",
    "EXSYNC_WOO_URL": "woo_url",
}
# Variables exsync no longer reads: a deployment still setting one is told, not silently ignored.
RENAMED_VARIABLES = {"EXSYNC_WEBHOOK_THREADS": "EXSYNC_WEBHOOK_CONNECTIONS"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything exsync is configured with, read once at start."""

    # Secrets stay out of the Settings' repr, so printing one cannot leak them.
    amqp_url: str | None = dataclasses.field(default=None, repr=False)
    webhook_secrets: tuple[str, ...] = dataclasses.field(default=(), repr=False)
    bind: str = DEFAULT_BIND
    # The receiver's /metrics and /readyz answer only here, off the public port (unset: on `bind`).
    metrics_bind: str | None = None
    webhook_workers: int = DEFAULT_WEBHOOK_WORKERS
    webhook_connections: int = DEFAULT_WEBHOOK_CONNECTIONS
    config_path: str | None = None
    exchequer_dsn: str | None = dataclasses.field(default=None, repr=False)
    # exsync's own tables; unset, they live in the Exchequer company's database
    state_dsn: str | None = dataclasses.field(default=None, repr=False)
    woo_url: str | None = None
    woo_consumer_key: str | None = dataclasses.field(default=None, repr=False)
    woo_consumer_secret: str | None = dataclasses.field(default=None, repr=False)
    # WordPress's own API (a customer's role) takes an application password, not the REST key.
    wp_username: str | None = None
    wp_application_password: str | None = dataclasses.field(default=None, repr=False)
    metrics_dir: str | None = None
    log_level: str = DEFAULT_LOG_LEVEL
    # the YAML file, typed (exsync.schemas.sections); an empty file's defaults when there is none
    config: Config = dataclasses.field(default_factory=default_config)

    # Any: each field has its own type, which dataclasses.replace checks when it builds the copy.
    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)

    def require(self, *variables: str) -> "Settings":
        """Raises ConfigError naming each of `variables` (ENDPOINT_VARIABLES keys) that is not set."""
        problems = []
        for variable in variables:
            if getattr(self, ENDPOINT_VARIABLES[variable]):
                continue
            if variable == "EXSYNC_STATE_DSN":
                problems.append((variable, "is not set, nor EXSYNC_EXCHEQUER_DSN, which it defaults to"))
            else:
                problems.append((variable, "is not set (there is no default outside the demo)"))
        if problems:
            raise ConfigError(problems)
        return self

    def endpoint(self, variable: str) -> str:
        """The value of `variable` (an ENDPOINT_VARIABLES key); ConfigError, as `require`, when it is not set."""
        self.require(variable)
        value: str = getattr(self, ENDPOINT_VARIABLES[variable])
        return value


def _positive_int(environ: Mapping[str, str], name: str, default: int, problems: list[tuple[str, str]]) -> int:
    raw = environ.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        problems.append((name, f"must be a positive whole number, not {raw!r}"))
        return default
    return value


def read_config_file(path: str) -> tuple[Config | None, list[tuple[str, str]]]:
    """Loads and validates the YAML file; returns (config, problems)."""
    try:
        with open(path, encoding="utf-8") as handle:
            raw = yaml.safe_load(handle)
    except OSError as error:
        return None, [(path, f"cannot be read: {error.strerror}")]
    except yaml.YAMLError as error:
        return None, [(path, f"is not valid YAML: {error}")]
    config, problems = validate_config(raw)
    return config, [(f"{path}:{where}", message) for where, message in problems]


def load_settings(environ: Mapping[str, str] | None = None, *, read_file: bool = True) -> Settings:
    """Reads the environment (default: the process's) and the config file it names.

    Raises ConfigError listing every problem, not just the first. With read_file false the
    file is named but not loaded (for `check-config`, which reports on it itself).
    """
    environ = os.environ if environ is None else environ
    problems = [(old, f"was renamed: set {new} instead") for old, new in RENAMED_VARIABLES.items() if old in environ]
    secrets = tuple(s for s in (p.strip() for p in environ.get("EXSYNC_WEBHOOK_SECRETS", "").split(",")) if s)
    config_path = environ.get("EXSYNC_CONFIG") or None
    config = default_config()
    if config_path and read_file:
        loaded, file_problems = read_config_file(config_path)
        problems.extend(file_problems)
        config = loaded if loaded is not None else config
    exchequer_dsn = environ.get("EXSYNC_EXCHEQUER_DSN") or None
    settings = Settings(
        amqp_url=environ.get("EXSYNC_AMQP_URL") or None,
        webhook_secrets=secrets,
        bind=environ.get("EXSYNC_BIND") or DEFAULT_BIND,
        metrics_bind=environ.get("EXSYNC_METRICS_BIND") or None,
        webhook_workers=_positive_int(environ, "EXSYNC_WEBHOOK_WORKERS", DEFAULT_WEBHOOK_WORKERS, problems),
        webhook_connections=_positive_int(environ, "EXSYNC_WEBHOOK_CONNECTIONS", DEFAULT_WEBHOOK_CONNECTIONS,
                                          problems),
        config_path=config_path,
        exchequer_dsn=exchequer_dsn,
        state_dsn=environ.get("EXSYNC_STATE_DSN") or exchequer_dsn,
        woo_url=environ.get("EXSYNC_WOO_URL") or None,
        woo_consumer_key=environ.get("EXSYNC_WOO_CONSUMER_KEY") or None,
        woo_consumer_secret=environ.get("EXSYNC_WOO_CONSUMER_SECRET") or None,
        wp_username=environ.get("EXSYNC_WP_USERNAME") or None,
        wp_application_password=environ.get("EXSYNC_WP_APPLICATION_PASSWORD") or None,
        metrics_dir=environ.get("PROMETHEUS_MULTIPROC_DIR") or None,
        log_level=(environ.get("EXSYNC_LOG_LEVEL") or DEFAULT_LOG_LEVEL).upper(),
        config=config,
    )
    if problems:
        raise ConfigError(problems)
    return settings


def child_environment(**overrides: str) -> dict[str, str]:
    """The environment for a process exsync starts (gunicorn), with `overrides` set."""
    return {**os.environ, **overrides}
