"""The `exsync` command line: every subcommand, its options and what it needs."""

import argparse

from exsync.cli.exchequer import cmd_exchequer_agent, cmd_exchequer_init, cmd_exchequer_seed, cmd_exchequer_smoke_test
from exsync.cli.operations import (
    cmd_audit_stock,
    cmd_customers_conflicts,
    cmd_customers_resolve,
    cmd_customers_sync,
    cmd_dead_letters_drop,
    cmd_dead_letters_list,
    cmd_dead_letters_replay,
    cmd_export_products,
    cmd_orders_progress,
    cmd_orders_retry_parked,
    cmd_orders_status,
    cmd_status,
)
from exsync.cli.processes import (
    cmd_capture,
    cmd_check_config,
    cmd_consume,
    cmd_reconcile,
    cmd_register_webhooks,
    cmd_sandbox,
    cmd_shipping_methods,
    cmd_topology,
    cmd_webhook,
)
from exsync.schemas.config import CUSTOMER_FIELDS

__all__ = ["DESCRIPTION", "build_parser"]

DESCRIPTION = "The `exsync` command: one subcommand per process or operator task."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="exsync", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser("check-config", help="validate the YAML configuration and list every problem")
    check.add_argument("--path", help="the file to check (default: EXSYNC_CONFIG)")
    check.set_defaults(func=cmd_check_config, needs_valid_config=False, needs=())

    topology = sub.add_parser("topology", help="declare exchanges and queues on RabbitMQ (idempotent)")
    topology.set_defaults(func=cmd_topology, needs=("EXSYNC_AMQP_URL",))

    webhook = sub.add_parser("webhook", help="serve the WooCommerce webhook receiver under gunicorn")
    webhook.set_defaults(func=cmd_webhook, needs=("EXSYNC_AMQP_URL",))

    consume = sub.add_parser("consume", help="run a consumer: orders, orders-writeback, woo-writer, customers, "
                                             "customers-export")
    consume.add_argument("name")
    consume.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    consume.set_defaults(func=cmd_consume, needs=("EXSYNC_AMQP_URL",))  # and per consumer: CONSUMER_NEEDS

    exchequer = sub.add_parser("exchequer", help="the Exchequer company: create and seed the demo tables")
    exchequer_sub = exchequer.add_subparsers(dest="exchequer_command", required=True, metavar="ACTION")
    init = exchequer_sub.add_parser("init", help="create the Exchequer-shaped tables (idempotent)")
    init.set_defaults(func=cmd_exchequer_init, needs=("EXSYNC_EXCHEQUER_DSN",))
    seed = exchequer_sub.add_parser("seed", help="fill an empty demo company with reproducible data")
    seed.add_argument("--items", type=int, default=1000, help="stock items (products), default 1000")
    seed.add_argument("--locations", type=int, default=3, help="stock locations, default 3")
    seed.add_argument("--boms", type=int, default=20, help="bills of materials, in addition to the items")
    seed.add_argument("--accounts", type=int, default=200, help="customer accounts, default 200")
    seed.add_argument("--seed", type=int, help="random seed: the same seed, the same company")
    seed.set_defaults(func=cmd_exchequer_seed, needs=("EXSYNC_EXCHEQUER_DSN",))
    agent = exchequer_sub.add_parser("agent", help="perform Exchequer write commands from the queue through the "
                                     "Toolkit (runs beside Exchequer; see README)")
    agent.add_argument("--toolkit", choices=("com", "emulator"), default=None,
                       help="override exchequer.agent.toolkit (emulator: the demo company)")
    agent.set_defaults(func=cmd_exchequer_agent, needs=("EXSYNC_AMQP_URL", "EXSYNC_EXCHEQUER_DSN"))
    smoke = exchequer_sub.add_parser("smoke-test", help="create one quotation through the configured write path "
                                     "and read it back")
    smoke.add_argument("--account", required=True, help="an existing customer account code")
    smoke.add_argument("--stock", required=True, help="an existing stock code")
    smoke.add_argument("--qty", type=float, default=1.0)
    smoke.add_argument("--price", type=float, default=1.0)
    smoke.add_argument("--vat-code", default="S")
    smoke.add_argument("--location", default=None)
    smoke.set_defaults(func=cmd_exchequer_smoke_test, needs=("EXSYNC_EXCHEQUER_DSN",))
    sandbox = sub.add_parser("sandbox", help="serve the sandbox WooCommerce shop (tests, demo, benchmarks)")
    sandbox.add_argument("--host", default="127.0.0.1", help="address to listen on, default 127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8080, help="port to listen on (0: any free), default 8080")
    sandbox.add_argument("--products", type=int, default=20, help="products to seed, default 20")
    sandbox.add_argument("--customers", type=int, default=5, help="customers to seed, default 5")
    sandbox.add_argument("--latency-seconds", type=float, default=0.0, help="added to every request")
    sandbox.add_argument("--item-latency-seconds", type=float, default=0.0,
                         help="added per batch item and per single write (real hosts: 0.04-0.06)")
    sandbox.add_argument("--workers", type=int, default=None,
                         help="PHP workers: requests served at once, the rest wait (default: no limit)")
    sandbox.add_argument("--delivery-delay-seconds", type=float, default=None,
                         help="webhook lag after the event, as Action Scheduler gives (default about a second; "
                              "real shops: 1-60)")
    sandbox.set_defaults(func=cmd_sandbox, needs=())

    register = sub.add_parser("register-webhooks",
                              help="make the shop's exsync webhooks match the configuration (idempotent)")
    register.set_defaults(func=cmd_register_webhooks, needs=("EXSYNC_STATE_DSN", "EXSYNC_WOO_URL"))

    reconcile = sub.add_parser("reconcile", help="publish orders and customers the webhooks missed, periodically")
    reconcile.add_argument("--once", action="store_true", help="one pass, then exit")
    reconcile.add_argument("--interval-seconds", type=int, help="default: shop.reconcile.interval_seconds")
    reconcile.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    reconcile.set_defaults(func=cmd_reconcile, needs=("EXSYNC_AMQP_URL", "EXSYNC_STATE_DSN", "EXSYNC_WOO_URL"))

    capture = sub.add_parser("capture", help="publish Exchequer's product, price and stock changes, periodically")
    capture.add_argument("--once", action="store_true", help="one cycle, then exit")
    capture.add_argument("--interval-seconds", type=float, help="default: capture.interval_seconds")
    capture.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    capture.set_defaults(func=cmd_capture, needs=("EXSYNC_AMQP_URL", "EXSYNC_EXCHEQUER_DSN", "EXSYNC_STATE_DSN"))

    shipping = sub.add_parser("shipping-methods",
                              help="import the shop's shipping zones and method instances for the order mapping")
    shipping.add_argument("--every-seconds", type=float, help="refresh periodically instead of once")
    shipping.set_defaults(func=cmd_shipping_methods, needs=("EXSYNC_STATE_DSN", "EXSYNC_WOO_URL"))

    orders = sub.add_parser("orders", help="the order pipeline: tracking, parked orders, order progress")
    orders_sub = orders.add_subparsers(dest="orders_command", required=True, metavar="ACTION")
    retry = orders_sub.add_parser("retry-parked", help="try every parked order again (e.g. after adding an item)")
    retry.add_argument("--limit", type=int, default=1000, help="at most this many orders, default 1000")
    retry.set_defaults(func=cmd_orders_retry_parked, needs=("EXSYNC_AMQP_URL", "EXSYNC_EXCHEQUER_DSN"))
    status = orders_sub.add_parser("status", help="orders by import state; overdue, parked and cancelled-after-import "
                                                  "orders with their reasons and documents")
    status.add_argument("--limit", type=int, default=50, help="orders to list of each kind, default 50")
    status.set_defaults(func=cmd_orders_status, needs=("EXSYNC_STATE_DSN",))
    progress = orders_sub.add_parser("progress", help="publish delivery notes and invoices raised in Exchequer "
                                                      "against imported orders (once)")
    progress.set_defaults(func=cmd_orders_progress, needs=("EXSYNC_AMQP_URL", "EXSYNC_EXCHEQUER_DSN"))

    customers = sub.add_parser("customers", help="two-way customer sync: conflicts left for a person, one-off syncs")
    customers_sub = customers.add_subparsers(dest="customers_command", required=True, metavar="ACTION")
    conflicts = customers_sub.add_parser("conflicts", help="fields changed differently on both sides (policy manual)")
    conflicts.add_argument("--all", action="store_true",
                           help="also every value a policy (or a person) decided against, newest first")
    conflicts.set_defaults(func=cmd_customers_conflicts, needs=("EXSYNC_STATE_DSN",))
    resolve = customers_sub.add_parser("resolve", help="settle a conflict: the chosen side's value goes to the other")
    resolve.add_argument("woo_id", type=int, help="the shop customer's id")
    resolve.add_argument("field", choices=CUSTOMER_FIELDS)
    resolve.add_argument("--take", required=True, choices=("woo", "exchequer"), help="the side whose value wins")
    resolve.set_defaults(func=cmd_customers_resolve, needs=("EXSYNC_EXCHEQUER_DSN", "EXSYNC_WOO_URL"))
    sync = customers_sub.add_parser("sync", help="sync shop customers and accounts now, as their events would")
    sync.add_argument("woo_ids", type=int, nargs="*", metavar="WOO_ID", help="shop customer ids")
    sync.add_argument("--account", action="append", default=[], metavar="CODE", help="an account code (repeatable)")
    sync.set_defaults(func=cmd_customers_sync, needs=("EXSYNC_EXCHEQUER_DSN", "EXSYNC_WOO_URL"))

    status = sub.add_parser("status", help="one screen: queues, dead letters, parked orders, conflicts, last "
                                           "capture and reconcile, the shop's webhooks (exit 1: needs a person)")
    status.add_argument("--json", action="store_true", help="the same as JSON, for scripts")
    status.set_defaults(func=cmd_status)

    dead = sub.add_parser("dead-letters", help="parked messages (QUEUE.dead, woo.invalid): list, replay, drop")
    dead_sub = dead.add_subparsers(dest="dead_letters_command", required=True, metavar="ACTION")
    dead_list = dead_sub.add_parser("list", help="subject, type, attempts, last error and time of each message")
    dead_list.add_argument("queue", help="a dead queue (orders.import.dead, or just orders.import) or woo.invalid")
    dead_list.add_argument("--limit", type=int, help="show at most this many")
    dead_list.add_argument("--json", action="store_true", help="as JSON, for scripts")
    dead_list.set_defaults(func=cmd_dead_letters_list)
    replay = dead_sub.add_parser("replay", help="send messages back to their queue with the attempt count reset "
                                                "(woo.invalid: validated again first)")
    replay.add_argument("queue")
    which = replay.add_mutually_exclusive_group()
    which.add_argument("--id", action="append", default=[], metavar="ID", help="a message id (repeatable)")
    which.add_argument("--all", action="store_true", help="every message on the queue")
    replay.set_defaults(func=cmd_dead_letters_replay)
    drop = dead_sub.add_parser("drop", help="delete messages for good")
    drop.add_argument("queue")
    drop.add_argument("--id", action="append", required=True, metavar="ID", help="a message id (repeatable)")
    drop.add_argument("--yes", action="store_true", help="do not ask (scripts; required without a terminal)")
    drop.set_defaults(func=cmd_dead_letters_drop)

    audit = sub.add_parser("audit", help="compare the shop with Exchequer and correct it")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="WHAT")
    audit_stock = audit_sub.add_parser("stock", help="every product's stock in the shop against Exchequer's free "
                                                     "stock, differences corrected, the worst listed")
    audit_stock.set_defaults(func=cmd_audit_stock,
                             needs=("EXSYNC_EXCHEQUER_DSN", "EXSYNC_STATE_DSN", "EXSYNC_WOO_URL"))

    export = sub.add_parser("export", help="one-off full exports to the shop")
    export_sub = export.add_subparsers(dest="export_command", required=True, metavar="WHAT")
    export_products = export_sub.add_parser("products", help="write every web product to the shop, with a summary")
    export_products.set_defaults(func=cmd_export_products,
                                 needs=("EXSYNC_AMQP_URL", "EXSYNC_EXCHEQUER_DSN", "EXSYNC_WOO_URL"))
    return parser
