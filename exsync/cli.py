"""The `exsync` command: one subcommand per process or operator task."""

import argparse
import sys

from exsync.config import load_settings, read_config_file
from exsync.errors import ConfigError, ExsyncError
from exsync.logs import configure_logging

__all__ = ["main"]


def cmd_check_config(settings, args):
    path = args.path or settings.config_path
    if not path:
        print("no configuration file given (EXSYNC_CONFIG or --path); defaults apply")
        return 0
    _, problems = read_config_file(path)
    for where, message in problems:
        print(f"{where}: {message}")
    if problems:
        print(f"{len(problems)} problem(s) in {path}", file=sys.stderr)
        return 1
    print(f"{path}: ok")
    return 0


def cmd_topology(settings, args):
    from exsync.bus import Topology, declare_topology

    topology = Topology.from_config(settings.config)
    declare_topology(settings.amqp_url, topology)
    for queue in topology.all_queue_names():
        print(queue)
    return 0


def cmd_webhook(settings, args):
    from exsync.webhooks.serve import run_gunicorn

    return run_gunicorn(settings)


def build_parser():
    parser = argparse.ArgumentParser(prog="exsync", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser("check-config", help="validate the YAML configuration and list every problem")
    check.add_argument("--path", help="the file to check (default: EXSYNC_CONFIG)")
    check.set_defaults(func=cmd_check_config, needs_valid_config=False)

    topology = sub.add_parser("topology", help="declare exchanges and queues on RabbitMQ (idempotent)")
    topology.set_defaults(func=cmd_topology)

    webhook = sub.add_parser("webhook", help="serve the WooCommerce webhook receiver under gunicorn")
    webhook.set_defaults(func=cmd_webhook)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as error:
        if getattr(args, "needs_valid_config", True):
            for where, message in error.problems:
                print(f"{where}: {message}", file=sys.stderr)
            return 2
        settings = load_settings(read_file=False)
    configure_logging(settings.log_level)
    try:
        return args.func(settings, args)
    except ExsyncError as error:
        print(f"exsync {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
