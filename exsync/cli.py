"""The `exsync` command: one subcommand per process or operator task."""

import argparse
import dataclasses
import datetime
import sys
import time

from exsync.config import load_settings, read_config_file
from exsync.errors import ConfigError, ExsyncError
from exsync.logs import configure_logging
from exsync.redact import redact, secrets_of
from exsync.schemas.config import CUSTOMER_FIELDS

__all__ = ["main", "build_parser", "DEFAULT_NEEDS"]

# What a command without a `needs` of its own must be given (ENDPOINT_VARIABLES in exsync.config).
DEFAULT_NEEDS = ("EXSYNC_AMQP_URL", "EXSYNC_EXCHEQUER_DSN")


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


def _state_database(settings):
    """exsync's own state tables' database (which may be the company's)."""
    from exsync.exchequer import connect, mapping_for

    return connect(settings.state_dsn, mapping=mapping_for(settings.config))


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
          f"{summary.bom_rows} BOM components, {summary.accounts} accounts, {summary.locations} locations, "
          f"{summary.backlog_orders} open sales orders carrying the allocations in {elapsed_seconds:.1f} s")
    return 0


def cmd_exchequer_agent(settings, args):
    """Serves Exchequer write commands from the queue through the configured Toolkit until SIGTERM."""
    import signal

    from exsync.exchequer import options_for
    from exsync.exchequer.agent import ToolkitAgent
    from exsync.exchequer.write_paths import agent_side_toolkit
    from exsync.metrics import default_metrics

    options = options_for(settings.config)
    if args.toolkit:
        options = dataclasses.replace(options, agent_toolkit=args.toolkit)
    metrics = default_metrics()
    with _exchequer_database(settings) as database:
        agent = ToolkitAgent(url=settings.amqp_url, toolkit=agent_side_toolkit(options=options, company=database,
                                                                               metrics=metrics), metrics=metrics)
        signal.signal(signal.SIGTERM, agent.stop)
        signal.signal(signal.SIGINT, agent.stop)
        print(f"exchequer agent: {options.agent_toolkit} toolkit on {database!r}", flush=True)
        agent.run()
    return 0


def cmd_exchequer_smoke_test(settings, args):
    """Creates one quotation through the configured write path and reads it back: what a site runs on
    its Exchequer server to see the agent, the Toolkit and the company agree."""
    import datetime
    import uuid

    from exsync.exchequer import DocumentLine, ExchequerReader, SalesDocument, options_for
    from exsync.exchequer.write_paths import consumer_toolkit

    options = options_for(settings.config)
    key = f"smoke-test:{uuid.uuid4().hex[:12]}"
    document = SalesDocument(
        external_key=key, doc_type="SQU", account_code=args.account, date=datetime.date.today(),
        your_ref="SMOKE", long_your_ref=f"SMOKE-{key[-12:]}",
        lines=(DocumentLine(stock_code=args.stock, description=f"exsync smoke test {args.stock}", qty=args.qty,
                            unit_net_price=args.price, vat_code=args.vat_code, location=args.location or ""),))
    with _exchequer_database(settings) as database:
        toolkit = consumer_toolkit(options=options, company=database, state=database, amqp_url=settings.amqp_url)
        try:
            result = toolkit.create_sales_document(document)
        finally:
            close = getattr(toolkit, "close", None)
            if close is not None:
                close()
        stored = ExchequerReader(database=database).document(result.reference)
    lines = [(line.stock_code, line.qty, line.net_value, line.vat_code) for line in stored.lines]
    print(f"{result.reference} ({'created' if result.created else 'already there'}) via {options.write_backend}: "
          f"account {stored.header.account_code}, your ref {stored.header.long_your_ref}, lines {lines}")
    expected = [(args.stock.upper(), float(args.qty), float(args.price), args.vat_code)]
    if stored.header.doc_type != "SQU" or stored.header.long_your_ref != document.long_your_ref or lines != expected:
        print("smoke test FAILED: the quotation read back is not the one sent")
        return 1
    print("smoke test passed: the quotation was saved and reads back as sent")
    return 0


def _wait_for_signal():
    """Blocks until SIGTERM or Ctrl-C, for commands that serve on background threads."""
    import signal
    import threading

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass


def cmd_sandbox(settings, args):
    from exsync.sandbox import (
        Faults,
        SandboxServer,
        SandboxShop,
        seed_catalogue,
        seed_customers,
        seed_shipping,
    )

    shop = SandboxShop(faults=Faults(latency_seconds=args.latency_seconds,
                                     item_latency_seconds=args.item_latency_seconds),
                       **({} if args.delivery_delay_seconds is None
                          else {"delivery_delay_seconds": args.delivery_delay_seconds}))
    credentials = shop.add_credentials(consumer_key=settings.woo_consumer_key,
                                       consumer_secret=settings.woo_consumer_secret)
    server = SandboxServer(shop=shop, host=args.host, port=args.port, workers=args.workers).start()
    if args.products:
        seed_catalogue(shop, count=args.products)
    if args.customers:
        seed_customers(shop, count=args.customers)
    seed_shipping(shop)
    print(f"sandbox shop at {server.url}/ (consumer key {credentials.consumer_key}"
          f"{'' if settings.woo_consumer_secret else ', secret ' + credentials.consumer_secret})", flush=True)
    try:
        _wait_for_signal()
    finally:
        server.stop()
    return 0


def _shop_metrics(args):
    from exsync.metrics import Metrics, default_metrics

    return default_metrics() if getattr(args, "metrics_port", None) else Metrics()


def _health(settings, args, *, amqp=False, dsns=()):
    """The process's Liveness and Readiness, served with its metrics on --metrics-port when given.

    Readiness checks the broker (`amqp`) and each database in `dsns` on connections of its own,
    kept between probes: the process's own connections belong to its loop's thread.
    """
    from exsync.bus import open_connection
    from exsync.exchequer import connect, mapping_for, ping
    from exsync.health import HeldCheck, Liveness, Readiness, serve_health

    liveness = Liveness(stall_seconds=settings.config["health"]["stall_seconds"])
    readiness = Readiness()
    if amqp:
        readiness.add("broker", HeldCheck(open=lambda: open_connection(settings.amqp_url),
                                          probe=lambda connection: connection.check(),
                                          close=lambda connection: connection.close()))
    for name, dsn in dsns:
        readiness.add(name, HeldCheck(open=lambda dsn=dsn: connect(dsn, mapping=mapping_for(settings.config)),
                                      probe=ping, close=lambda database: database.close()))
    if getattr(args, "metrics_port", None):
        _shop_metrics(args)  # registers exsync's metrics before the first scrape
        serve_health(args.metrics_port, liveness=liveness, readiness=readiness)
    return liveness, readiness


def _databases(settings, *, exchequer=True):
    """(check name, DSN) of the databases a process uses: the company's (if `exchequer`) and the state's."""
    dsns = [("database", settings.exchequer_dsn)] if exchequer else []
    if not exchequer or settings.state_dsn != settings.exchequer_dsn:
        dsns.append(("state-database", settings.state_dsn))
    return dsns


def _registrar(settings, client, metrics=None):
    """The registrar with its record in the state database (close the record when done)."""
    from exsync.exchequer import connect, mapping_for
    from exsync.woo import WebhookRegistrar
    from exsync.woo.secret_store import WebhookSecretStore

    record = WebhookSecretStore(connect=lambda: connect(settings.state_dsn, mapping=mapping_for(settings.config)),
                                shop_url=client.url)
    return WebhookRegistrar.from_settings(settings, client=client, metrics=metrics, record=record)


def _print_webhook_actions(actions):
    for action in actions:
        changes = f" ({', '.join(action.changes)})" if action.changes else ""
        print(f"{action.action:<11} webhook {action.webhook_id} {action.topic}{changes}")


def cmd_register_webhooks(settings, args):
    from exsync.woo import WooClient

    with WooClient.from_settings(settings) as client:
        registrar = _registrar(settings, client)
        try:
            _print_webhook_actions(registrar.sync())
        finally:
            registrar.record.close()
    return 0


def cmd_reconcile(settings, args):
    import threading

    from exsync.bus import Publisher
    from exsync.exchequer import StateValues
    from exsync.exchequer.runs import RECONCILE, RunLog
    from exsync.woo import Reconciler, WooClient

    options = settings.config["shop"]["reconcile"]
    metrics = _shop_metrics(args)
    liveness = None
    if not args.once:
        liveness, _ = _health(settings, args, amqp=True, dsns=_databases(settings, exchequer=False))
    client = WooClient.from_settings(settings, metrics=metrics)
    registrar = None
    if options["register_webhooks"]:
        # --once repairs the webhooks too: a one-off pass (e.g. a CronJob) keeps them as the loop does.
        registrar = _registrar(settings, client, metrics=metrics)
    publisher = Publisher(url=settings.amqp_url, metrics=metrics)
    # The watermarks live in the state database, so a restarted pod carries on where it stopped.
    state_db = _state_database(settings)
    runs = RunLog(database=state_db).ensure()
    reconciler = Reconciler(client=client, publisher=publisher, store=StateValues(database=state_db).ensure(),
                            overlap_seconds=options["overlap_seconds"],
                            initial_lookback_seconds=options["initial_lookback_seconds"],
                            customer_roles=options["customer_roles"], registrar=registrar, metrics=metrics,
                            on_pass=lambda ok, detail: runs.record(RECONCILE, ok=ok, detail=detail))
    try:
        if args.once:
            report = reconciler.run_once()
            print(f"published {report.orders_published} order(s), {report.customers_published} customer(s), "
                  f"parked {report.parked}; watermarks orders={report.orders_watermark} "
                  f"customers={report.customers_watermark}")
            if registrar is not None:
                _print_webhook_actions(registrar.sync())
            return 0
        import signal

        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            reconciler.run_forever(interval_seconds=args.interval_seconds or options["interval_seconds"], stop=stop,
                                   heartbeat=liveness.beat)
        except KeyboardInterrupt:
            pass
        return 0
    finally:
        publisher.close()
        if registrar is not None:
            registrar.record.close()
        client.close()
        state_db.close()


def cmd_consume(settings, args):
    from exsync.consumers.runner import CONSUMER_NEEDS, run_consumer

    settings.require(*CONSUMER_NEEDS.get(args.name, ()))
    exchequer = "EXSYNC_EXCHEQUER_DSN" in CONSUMER_NEEDS.get(args.name, ())
    liveness, readiness = _health(settings, args, dsns=_databases(settings, exchequer=exchequer))
    return run_consumer(settings, args.name, liveness=liveness, readiness=readiness)


def cmd_capture(settings, args):
    import signal
    import threading

    from exsync.exchequer.capture import build_capture

    liveness = None
    if not args.once:
        liveness, _ = _health(settings, args, amqp=True, dsns=_databases(settings))
    capture, close = build_capture(settings, metrics=_shop_metrics(args))
    try:
        if args.once:
            report = capture.run_once()
            capture.state.release()
            if report.skipped:
                print("another capture holds this company's lease; nothing done")
                return 0
            print(f"scanned {report.rows_scanned} rows ({report.exported} web products): {report.products_changed} "
                  f"product and {report.stock_changed} stock change(s) published in {report.seconds:.2f} s")
            return 0
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            interval_seconds = args.interval_seconds or settings.config["capture"]["interval_seconds"]
            capture.run_forever(interval_seconds=interval_seconds, stop=stop, heartbeat=liveness.beat)
        except KeyboardInterrupt:
            pass
        return 0
    finally:
        close()


def cmd_export_products(settings, args):
    from exsync.consumers.product_export import export_products

    def progress(done, total):
        print(f"\rexport: {done}/{total} products", end="", file=sys.stderr, flush=True)

    report = export_products(settings, progress=progress)
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


def cmd_audit_stock(settings, args):
    from exsync.consumers.woo_writer import WriterBusyError
    from exsync.consumers.woo_writer import build as build_writer

    writer = build_writer(settings, metrics=None)
    try:
        report = writer.audit_stock(wait_seconds=settings.config["products"]["lease_seconds"])
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


def cmd_shipping_methods(settings, args):
    import signal
    import threading

    from exsync.consumers.shipping_methods import import_shipping_methods
    from exsync.exchequer import connect, mapping_for
    from exsync.state.orders import ShippingMethodStore, ensure_order_tables
    from exsync.woo import WooClient

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with connect(settings.state_dsn, mapping=mapping_for(settings.config)) as database, \
            WooClient.from_settings(settings) as client:
        ensure_order_tables(database)
        store = ShippingMethodStore(database=database)
        while True:
            for method in import_shipping_methods(client=client, store=store):
                state = "enabled" if method.enabled else "disabled"
                print(f"zone {method.zone_id} {method.zone_name!r}: instance {method.instance_id} "
                      f"{method.method_id} {method.title!r} ({state})")
            if not args.every_seconds:
                return 0
            try:
                if stop.wait(args.every_seconds):
                    return 0
            except KeyboardInterrupt:
                return 0


def cmd_orders_retry_parked(settings, args):
    from exsync.consumers.orders import build
    from exsync.metrics import Metrics

    consumer = build(settings, metrics=Metrics())
    try:
        print(f"{consumer.release_parked(limit=args.limit)} parked order(s) imported")
    finally:
        consumer.close()
    return 0


def cmd_orders_status(settings, args):
    from exsync.consumers.order_lifecycle import EXIT_STATUSES
    from exsync.exchequer import connect, mapping_for
    from exsync.state.orders import OrderStore, ensure_order_tables

    overdue_after_seconds = settings.config["orders"]["overdue_after_seconds"]
    now = time.time()
    with connect(settings.state_dsn, mapping=mapping_for(settings.config)) as database:
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


def cmd_orders_progress(settings, args):
    from exsync.bus import Publisher, Topology
    from exsync.exchequer.progress import OrderProgressCapture

    with _exchequer_database(settings) as database, \
            Publisher(url=settings.amqp_url, topology=Topology.from_config(settings.config)) as publisher:
        published = OrderProgressCapture(database=database, publisher=publisher).run_once()
    print(f"{published} order progress event(s) published")
    return 0


def cmd_customers_conflicts(settings, args):
    from exsync.exchequer import connect, mapping_for
    from exsync.state.links import LinkStore

    with connect(settings.state_dsn, mapping=mapping_for(settings.config)) as database:
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


def cmd_customers_resolve(settings, args):
    from exsync.consumers.customers import build
    from exsync.metrics import Metrics

    consumer = build(settings, metrics=Metrics())
    try:
        outcome = consumer.resolve(args.woo_id, args.field, args.take)
    finally:
        consumer.close()
    print(f"shop customer {args.woo_id}: {args.field} taken from {args.take} ({outcome})")
    return 0


def cmd_customers_sync(settings, args):
    from exsync.consumers.customers import build
    from exsync.metrics import Metrics

    consumer = build(settings, metrics=Metrics())
    try:
        for woo_id in args.woo_ids:
            print(f"shop customer {woo_id}: {consumer.sync_customer(woo_id)}")
        for code in args.account:
            print(f"account {code.upper()}: {consumer.sync_account(code.upper())}")
    finally:
        consumer.close()
    return 0


def cmd_status(settings, args):
    import json

    from exsync.status import collect_status, render_status

    report = collect_status(settings)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, sort_keys=True))
    else:
        print(render_status(report))
    # Scripts and probes read the exit code: 1 while anything waits for a person.
    return 1 if report.needs_attention else 0


def _dead_letters(settings):
    from exsync.bus import Topology
    from exsync.bus.dead_letters import DeadLetters
    from exsync.metrics import default_metrics

    return DeadLetters(url=settings.amqp_url, topology=Topology.from_config(settings.config),
                       metrics=default_metrics())


def cmd_dead_letters_list(settings, args):
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


def cmd_dead_letters_replay(settings, args):
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


def cmd_dead_letters_drop(settings, args):
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


def build_parser():
    parser = argparse.ArgumentParser(prog="exsync", description=__doc__)
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
    configure_logging(settings.log_level, secrets=secrets_of(settings))
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


if __name__ == "__main__":
    sys.exit(main())
