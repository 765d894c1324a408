"""The `exsync` command: one subcommand per process or operator task.

`parser` names the subcommands; `processes`, `exchequer` and `operations` hold them, each
building what it runs through `exsync.wiring`.
"""

import sys

from exsync.cli.parser import build_parser
from exsync.config import load_settings
from exsync.errors import ConfigError, ExsyncError
from exsync.logs import configure_logging, lean_log_records
from exsync.redact import redact, secrets_of

__all__ = ["main", "build_parser", "DEFAULT_NEEDS"]

# What a command without a `needs` of its own must be given (ENDPOINT_VARIABLES in exsync.config).
DEFAULT_NEEDS = ("EXSYNC_AMQP_URL", "EXSYNC_EXCHEQUER_DSN")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as error:
        if getattr(args, "needs_valid_config", True):
            for where, message in error.problems:
                print(f"{where}: {message}", file=sys.stderr)
            return 2
        settings = load_settings(read_file=False)
    configure_logging(settings.log_level, secrets=secrets_of(settings))
    lean_log_records()
    try:
        # What the command talks to must be named: no broker or database is assumed.
        settings.require(*getattr(args, "needs", DEFAULT_NEEDS))
    except ConfigError as error:
        for where, message in error.problems:
            print(f"exsync {args.command}: {where}: {message}", file=sys.stderr)
        return 2
    try:
        return args.func(settings, args)
    except ExsyncError as error:
        print(f"exsync {args.command}: {redact(error, secrets=secrets_of(settings))}", file=sys.stderr)
        return 1
