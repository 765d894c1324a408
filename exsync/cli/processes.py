"""The long-running processes' commands (and their one-off passes): webhook, consume, capture,
reconcile, the sandbox shop, and the configuration and topology they start from."""

import argparse
import sys

from exsync import wiring
from exsync.cli.common import databases, health, print_webhook_actions, shop_metrics, wait_for_signal
from exsync.config import Settings, read_config_file

__all__ = [
    "cmd_check_config",
    "cmd_topology",
    "cmd_webhook",
    "cmd_consume",
    "cmd_capture",
    "cmd_sandbox",
    "cmd_register_webhooks",
    "cmd_reconcile",
    "cmd_shipping_methods",
]


def cmd_check_config(settings: Settings, args: argparse.Namespace) -> int:
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


def cmd_topology(settings: Settings, args: argparse.Namespace) -> int:
    from exsync.bus import declare_topology

    topology = wiring.topology(settings)
    declare_topology(settings.endpoint("EXSYNC_AMQP_URL"), topology)
    for queue in topology.all_queue_names():
        print(queue)
    return 0


def cmd_webhook(settings: Settings, args: argparse.Namespace) -> int:
    from exsync.webhooks.serve import run_gunicorn

    return run_gunicorn(settings)


def cmd_consume(settings: Settings, args: argparse.Namespace) -> int:
    from exsync.consumers.connections import use_broker
    from exsync.consumers.runner import run_consumer
    from exsync.metrics import default_metrics

    settings.require(*wiring.CONSUMER_NEEDS.get(args.name, ()))
    exchequer = "EXSYNC_EXCHEQUER_DSN" in wiring.CONSUMER_NEEDS.get(args.name, ())
    liveness, readiness = health(settings, args, dsns=databases(settings, exchequer=exchequer))
    metrics = default_metrics()
    use_broker(settings.amqp_url)
    consumer = wiring.build_consumer(args.name, settings, metrics=metrics)
    worker = wiring.worker(settings, args.name, consumer, metrics=metrics, heartbeat=liveness.beat)
    return run_consumer(worker=worker, consumer=consumer, readiness=readiness)


def cmd_capture(settings: Settings, args: argparse.Namespace) -> int:
    import signal
    import threading

    heartbeat = None
    if not args.once:
        heartbeat = health(settings, args, amqp=True, dsns=databases(settings))[0].beat
    capture, close = wiring.build_capture(settings, metrics=shop_metrics(args))
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
            interval_seconds = args.interval_seconds or settings.config.capture.interval_seconds
            capture.run_forever(interval_seconds=interval_seconds, stop=stop, heartbeat=heartbeat)
        except KeyboardInterrupt:
            pass
        return 0
    finally:
        close()


def cmd_sandbox(settings: Settings, args: argparse.Namespace) -> int:
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
        wait_for_signal()
    finally:
        server.stop()
    return 0


def cmd_register_webhooks(settings: Settings, args: argparse.Namespace) -> int:
    with wiring.woo_client(settings) as client:
        registrar = wiring.registrar(settings, client=client)
        try:
            print_webhook_actions(registrar.sync())
        finally:
            registrar.record.close()
    return 0


def cmd_reconcile(settings: Settings, args: argparse.Namespace) -> int:
    import threading

    from exsync.exchequer import StateValues
    from exsync.exchequer.runs import RECONCILE, RunLog
    from exsync.woo import Reconciler

    options = settings.config.shop.reconcile
    metrics = shop_metrics(args)
    heartbeat = None
    if not args.once:
        heartbeat = health(settings, args, amqp=True, dsns=databases(settings, exchequer=False))[0].beat
    client = wiring.woo_client(settings, metrics=metrics)
    registrar = None
    if options.register_webhooks:
        # --once repairs the webhooks too: a one-off pass (e.g. a CronJob) keeps them as the loop does.
        registrar = wiring.registrar(settings, client=client, metrics=metrics)
    publisher = wiring.publisher(settings, metrics=metrics)
    # The watermarks live in the state database, so a restarted pod carries on where it stopped.
    state_db = wiring.state_database(settings)
    runs = RunLog(database=state_db).ensure()
    reconciler = Reconciler(client=client, publisher=publisher, store=StateValues(database=state_db).ensure(),
                            overlap_seconds=options.overlap_seconds,
                            initial_lookback_seconds=options.initial_lookback_seconds,
                            customer_roles=options.customer_roles, registrar=registrar, metrics=metrics,
                            on_pass=lambda ok, detail: runs.record(RECONCILE, ok=ok, detail=detail))
    try:
        if args.once:
            report = reconciler.run_once()
            print(f"published {report.orders_published} order(s), {report.customers_published} customer(s), "
                  f"parked {report.parked}; watermarks orders={report.orders_watermark} "
                  f"customers={report.customers_watermark}")
            if registrar is not None:
                print_webhook_actions(registrar.sync())
            return 0
        import signal

        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            reconciler.run_forever(interval_seconds=args.interval_seconds or options.interval_seconds, stop=stop,
                                   heartbeat=heartbeat)
        except KeyboardInterrupt:
            pass
        return 0
    finally:
        publisher.close()
        if registrar is not None:
            registrar.record.close()
        client.close()
        state_db.close()


def cmd_shipping_methods(settings: Settings, args: argparse.Namespace) -> int:
    import signal
    import threading

    from exsync.consumers.shipping_methods import import_shipping_methods
    from exsync.state.orders import ShippingMethodStore, ensure_order_tables

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with wiring.state_database(settings) as database, wiring.woo_client(settings) as client:
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
