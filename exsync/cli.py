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


def _exchequer_database(settings):
    from exsync.exchequer import connect, mapping_for

    return connect(settings.exchequer_dsn, mapping=mapping_for(settings.config))


def cmd_exchequer_init(settings, args):
    from exsync.exchequer import init_schema

    with _exchequer_database(settings) as database:
        init_schema(database)
        print(f"tables ready in {database!r}")
    return 0


def cmd_exchequer_seed(settings, args):
    import time

    from exsync.exchequer import init_schema, options_for, seed

    options = options_for(settings.config)
    with _exchequer_database(settings) as database:
        init_schema(database)
        started = time.monotonic()
        chosen = {} if args.seed is None else {"seed_value": args.seed}
        summary = seed(database, items=args.items, locations=args.locations, boms=args.boms,
                       accounts=args.accounts, account_codes=options.account_codes, **chosen)
        elapsed_seconds = time.monotonic() - started
    print(f"seeded {summary.stock_rows} stock rows, {summary.stock_location_rows} stock-location rows, "
          f"{summary.bom_rows} BOM components, {summary.accounts} accounts, {summary.locations} locations "
          f"in {elapsed_seconds:.1f} s")
    return 0


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

    exchequer = sub.add_parser("exchequer", help="the Exchequer company: create and seed the demo tables")
    exchequer_sub = exchequer.add_subparsers(dest="exchequer_command", required=True, metavar="ACTION")
    init = exchequer_sub.add_parser("init", help="create the Exchequer-shaped tables (idempotent)")
    init.set_defaults(func=cmd_exchequer_init)
    seed = exchequer_sub.add_parser("seed", help="fill an empty demo company with reproducible data")
    seed.add_argument("--items", type=int, default=1000, help="stock items (products), default 1000")
    seed.add_argument("--locations", type=int, default=3, help="stock locations, default 3")
    seed.add_argument("--boms", type=int, default=20, help="bills of materials, in addition to the items")
    seed.add_argument("--accounts", type=int, default=200, help="customer accounts, default 200")
    seed.add_argument("--seed", type=int, help="random seed: the same seed, the same company")
    seed.set_defaults(func=cmd_exchequer_seed)
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
