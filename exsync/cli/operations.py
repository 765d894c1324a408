"""The operator's commands: exports and audits, orders, customers, status, dead letters."""

import argparse
import datetime
import sys
import time
from typing import TYPE_CHECKING

from exsync import wiring
from exsync.config import Settings

if TYPE_CHECKING:
    from exsync.bus.dead_letters import DeadLetters

__all__ = [
    "cmd_export_products",
    "cmd_audit_stock",
    "cmd_orders_retry_parked",
    "cmd_orders_status",
    "cmd_orders_progress",
    "cmd_customers_conflicts",
    "cmd_customers_resolve",
    "cmd_customers_sync",
    "cmd_status",
    "cmd_dead_letters_list",
    "cmd_dead_letters_replay",
    "cmd_dead_letters_drop",
]


def cmd_export_products(settings: Settings, args: argparse.Namespace) -> int:
    def progress(done: int, total: int) -> None:
        print(f"\rexport: {done}/{total} products", end="", file=sys.stderr, flush=True)

    report = wiring.export_products(settings, progress=progress)
    print(file=sys.stderr)
    if report.skipped:
        print("a running capture holds this company's lease; stop it (or wait) and export again", file=sys.stderr)
        return 1
    if report.handed_over:
        print(f"{report.exported} web products stored; another process still holds the woo-writer's lease, "
              "so the running woo-writer sends them", file=sys.stderr)
        return 0
    flush = report.flush
    print(f"{report.exported} web products: {flush.created} created, {flush.updated} updated, "
          f"{flush.unchanged} unchanged, {flush.failed} failed, {flush.retry_later} left for later "
          f"({flush.requests} batch requests)")
    for sku, attempts, error in report.failures:
        print(f"failed {sku} after {attempts} attempt(s): {error}")
    return 1 if report.failures or flush.retry_later else 0


def cmd_audit_stock(settings: Settings, args: argparse.Namespace) -> int:
    from exsync.consumers.woo_writer import WriterBusyError

    writer = wiring.build_woo_writer(settings, metrics=None)
    try:
        report = writer.audit_stock(wait_seconds=settings.config.products.lease_seconds)
    except WriterBusyError as error:
        print(f"{error}; try again", file=sys.stderr)
        return 1
    finally:
        writer.close()
    print(f"{report.checked} products checked in the shop: {report.drifted} differed from Exchequer's free stock, "
          f"{report.corrected} corrected, {report.failed} failed; {report.missing} web product(s) not in the shop "
          f"({report.requests} requests, {report.seconds:.1f} s)")
    for sku, shop_quantity, exchequer_quantity in report.worst:
        shown = "not managed" if shop_quantity is None else shop_quantity
        print(f"  {sku}: the shop showed {shown}, Exchequer {exchequer_quantity}")
    return 1 if report.failed else 0


def cmd_orders_retry_parked(settings: Settings, args: argparse.Namespace) -> int:
    from exsync.metrics import Metrics

    consumer = wiring.build_orders(settings, metrics=Metrics())
    try:
        print(f"{consumer.release_parked(limit=args.limit)} parked order(s) imported")
    finally:
        consumer.close()
    return 0


def cmd_orders_status(settings: Settings, args: argparse.Namespace) -> int:
    from exsync.consumers.order_lifecycle import EXIT_STATUSES
    from exsync.state.orders import OrderStore, ensure_order_tables

    overdue_after_seconds = settings.config.orders.overdue_after_seconds
    now = time.time()
    with wiring.state_database(settings) as database:
        ensure_order_tables(database)
        store = OrderStore(database=database)
        for state, count in sorted(store.counts().items()):
            print(f"{state}: {count}")
        paid_before = now - overdue_after_seconds
        print(f"overdue (paid, not imported after {overdue_after_seconds} s): "
              f"{store.overdue_count(paid_before=paid_before)}")
        print(f"cancelled after import: {store.ended_after_import_count(statuses=EXIT_STATUSES)}")
        for row in store.overdue(paid_before=paid_before, limit=args.limit):
            state = row.import_state or "in progress"
            print(f"overdue order {row.order_id} (#{row.number}, {row.status}), paid {(now - row.paid_at) / 60:.0f} "
                  f"min ago, {state}" + (f": {row.reason}" if row.reason else ""))
        for row in store.parked(limit=args.limit):
            print(f"parked order {row.order_id} (#{row.number}, {row.status}): {row.reason}")
        for row in store.ended_after_import(statuses=EXIT_STATUSES, limit=args.limit):
            print(f"cancelled after import: order {row.order_id} (#{row.number}, {row.status}) kept as "
                  f"{', '.join(row.refs)}")
    return 0


def cmd_orders_progress(settings: Settings, args: argparse.Namespace) -> int:
    from exsync.exchequer.progress import OrderProgressCapture

    with wiring.company_database(settings) as database, wiring.publisher(settings) as publisher:
        published = OrderProgressCapture(database=database, publisher=publisher).run_once()
    print(f"{published} order progress event(s) published")
    return 0


def cmd_customers_conflicts(settings: Settings, args: argparse.Namespace) -> int:
    from exsync.state.links import LinkStore
    with wiring.state_database(settings) as database:
        store = LinkStore(database=database)
        conflicts = store.conflicts()
        decisions = store.decisions() if args.all else []
    for conflict in conflicts:
        print(f"shop customer {conflict.woo_id} / account {conflict.account_code}: {conflict.field} is "
              f"{conflict.woo_value!r} in the shop, {conflict.exchequer_value!r} in Exchequer "
              f"(was {conflict.base_value!r})")
    print(f"{len(conflicts)} conflict(s) waiting: exsync customers resolve WOO_ID FIELD --take woo|exchequer")
    if args.all:
        for decision in decisions:
            when = datetime.datetime.fromtimestamp(decision.decided_at, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
            if decision.winner == "manual":
                outcome = "left for a person"
            else:
                kept, lost = ((decision.woo_value, decision.exchequer_value) if decision.winner == "woo"
                              else (decision.exchequer_value, decision.woo_value))
                outcome = f"{decision.winner} kept {kept!r}, overriding {lost!r}"
            print(f"{when} shop customer {decision.woo_id} / account {decision.account_code}: {decision.field} "
                  f"{decision.woo_value!r} in the shop, {decision.exchequer_value!r} in Exchequer (was "
                  f"{decision.base_value!r}); policy {decision.policy}: {outcome}")
        print(f"{len(decisions)} decision(s) recorded")
    return 0


def cmd_customers_resolve(settings: Settings, args: argparse.Namespace) -> int:
    from exsync.metrics import Metrics

    consumer = wiring.build_customers(settings, metrics=Metrics())
    try:
        outcome = consumer.resolve(args.woo_id, args.field, args.take)
    finally:
        consumer.close()
    print(f"shop customer {args.woo_id}: {args.field} taken from {args.take} ({outcome})")
    return 0


def cmd_customers_sync(settings: Settings, args: argparse.Namespace) -> int:
    from exsync.metrics import Metrics

    consumer = wiring.build_customers(settings, metrics=Metrics())
    try:
        for woo_id in args.woo_ids:
            print(f"shop customer {woo_id}: {consumer.sync_customer(woo_id)}")
        for code in args.account:
            print(f"account {code.upper()}: {consumer.sync_account(code.upper())}")
    finally:
        consumer.close()
    return 0


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from exsync.status import collect_status, render_status

    report = collect_status(settings)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, sort_keys=True))
    else:
        print(render_status(report))
    # Scripts and probes read the exit code: 1 while anything waits for a person.
    return 1 if report.needs_attention else 0


def _dead_letters(settings: Settings) -> "DeadLetters":
    from exsync.bus.dead_letters import DeadLetters
    from exsync.metrics import default_metrics

    return DeadLetters(url=settings.endpoint("EXSYNC_AMQP_URL"), topology=wiring.topology(settings),
                       metrics=default_metrics())


def cmd_dead_letters_list(settings: Settings, args: argparse.Namespace) -> int:
    import json

    letters = _dead_letters(settings).list(args.queue, limit=args.limit)
    if args.json:
        print(json.dumps([letter.as_dict() for letter in letters], indent=2))
        return 0
    for letter in letters:
        replays = f", replayed {letter.replays}x before" if letter.replays else ""
        print(f"{letter.id}  {letter.type or '?'} subject {letter.subject or '?'}  attempts {letter.attempts}"
              f"{replays}  failed at {letter.failed_at or '?'}\n    {letter.last_error}")
    print(f"{len(letters)} message(s) on {letters[0].queue if letters else args.queue}")
    return 0


def cmd_dead_letters_replay(settings: Settings, args: argparse.Namespace) -> int:
    if not args.all and not args.id:
        print("exsync dead-letters replay: name the messages (--id ID ...) or say --all", file=sys.stderr)
        return 2
    replayed, refused = _dead_letters(settings).replay(args.queue, ids=None if args.all else args.id)
    for letter in replayed:
        print(f"replayed {letter.id} ({letter.type or '?'} subject {letter.subject or '?'})")
    for letter in refused:
        print(f"still invalid, left parked: {letter.id}: {letter.last_error}")
    print(f"{len(replayed)} replayed, {len(refused)} left parked")
    return 1 if refused else 0


def cmd_dead_letters_drop(settings: Settings, args: argparse.Namespace) -> int:
    if not args.yes:
        if not sys.stdin.isatty():
            print("exsync dead-letters drop: deleting messages needs --yes when nobody is at a terminal",
                  file=sys.stderr)
            return 2
        answer = input(f"delete {len(args.id)} message(s) from {args.queue} for good? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing dropped")
            return 1
    for letter in _dead_letters(settings).drop(args.queue, ids=args.id):
        print(f"dropped {letter.id} ({letter.type or '?'} subject {letter.subject or '?'})")
    return 0
