"""The composition root: every exsync process built from its Settings, in one place.

The parts below this module take what they need as keyword arguments and never read the
settings themselves; this module reads `Settings` (endpoints from the environment, the typed
configuration from `exsync.schemas.sections`) and hands each part its values. The CLI, the demo,
the webhook's WSGI entry point and the tests build through it, so a process started by hand is
wired exactly as one started by `exsync ...`.

The broker's topology is collected here too: each consumer module declares its queue beside its
handler (`QUEUE = QueueSpec(...)`), and `topology()` gives the bus those declarations.
"""

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

from exsync.bus import Publisher, QueueSpec, SharedPublisher, Topology, Worker
from exsync.config import Settings
from exsync.consumers import customers, order_writeback, orders, woo_writer
from exsync.consumers.customers import CustomersConsumer
from exsync.consumers.gauges import track_state_gauges
from exsync.consumers.order_writeback import OrderWritebackConsumer
from exsync.consumers.orders import OrdersConsumer
from exsync.consumers.product_export import ExportReport, WriterSink, run_export
from exsync.consumers.woo_writer import ExchequerFreeStock, WooWriter
from exsync.errors import ConfigError
from exsync.exchequer.account_capture import AccountCapture
from exsync.exchequer.capture import BusSink, CaptureReport, CaptureState, ChangeCapture, order_progress_step
from exsync.exchequer.db import Database, connect
from exsync.exchequer.options import mapping_for, options_for
from exsync.exchequer.reader import ExchequerReader
from exsync.exchequer.runs import RunLog
from exsync.metrics import Metrics
from exsync.schemas.config import default_config
from exsync.schemas.sections import Config
from exsync.state.links import LinkStore
from exsync.state.orders import OrderStore
from exsync.woo import WebhookRegistrar, WooClient
from exsync.woo.ratelimit import SharedTokenBucket
from exsync.woo.secret_store import WebhookSecretStore

__all__ = [
    "CONSUMERS",
    "CONSUMER_NEEDS",
    "QUEUES",
    "build_capture",
    "build_consumer",
    "build_woo_writer",
    "company_database",
    "connect_to",
    "export_products",
    "publisher",
    "registrar",
    "run_capture_once",
    "shared_publisher",
    "start_writer_thread",
    "state_database",
    "topology",
    "webhook_app",
    "woo_client",
]

# Every consuming queue, as the consumer modules declare them. Order write-backs have a queue of
# their own rather than sharing woo.write (see exsync.consumers.order_writeback).
QUEUES: tuple[QueueSpec, ...] = (orders.QUEUE, customers.QUEUE, order_writeback.QUEUE, customers.EXPORT_QUEUE,
                                 woo_writer.QUEUE)


def _config(settings_or_config: Settings | Config | None) -> Config:
    if settings_or_config is None:
        return default_config()
    return settings_or_config.config if isinstance(settings_or_config, Settings) else settings_or_config


def topology(config: Settings | Config | None = None, **overrides: Any) -> Topology:
    """What exsync declares on the broker: every queue declared above, with the `bus:` section's retry
    delays and attempts (an empty configuration's when `config` is None); `overrides` replace fields."""
    bus = _config(config).bus
    values = {"queues": QUEUES, "retry_delays_seconds": tuple(bus.retry_delays_seconds),
              "max_attempts": bus.max_attempts}
    return Topology(**{**values, **overrides})


# -- connections --------------------------------------------------------------------------------

def connect_to(settings: Settings, dsn: str) -> Database:
    """A connection to `dsn` with the configuration's table and column names."""
    return connect(dsn, mapping=mapping_for(settings.config))


def company_database(settings: Settings) -> Database:
    """The Exchequer company's database."""
    return connect_to(settings, settings.endpoint("EXSYNC_EXCHEQUER_DSN"))


def state_database(settings: Settings) -> Database:
    """exsync's own state tables' database (which may be the company's)."""
    return connect_to(settings, settings.endpoint("EXSYNC_STATE_DSN"))


def publisher(settings: Settings, *, metrics: Metrics | None = None) -> Publisher:
    """A confirming publisher to the settings' broker, declaring the topology."""
    return Publisher(url=settings.endpoint("EXSYNC_AMQP_URL"), topology=topology(settings), metrics=metrics)


def shared_publisher(settings: Settings, *, metrics: Metrics | None = None, **options: Any) -> SharedPublisher:
    """The thread-safe publisher (consumers on several threads, the webhook receiver)."""
    return SharedPublisher(url=settings.amqp_url, topology=topology(settings), metrics=metrics,
                           **options)


def woo_client(settings: Settings, *, metrics: Metrics | None = None, **overrides: Any) -> WooClient:
    """A client for the shop the settings name, tuned by the `shop:` section; with a state database
    its request budget is the deployment's, shared through the state database."""
    shop = settings.config.shop
    url, key, secret = settings.woo_url, settings.woo_consumer_key, settings.woo_consumer_secret
    if not (url and key and secret):
        missing = [name for name, value in (("EXSYNC_WOO_URL", url), ("EXSYNC_WOO_CONSUMER_KEY", key),
                                            ("EXSYNC_WOO_CONSUMER_SECRET", secret)) if not value]
        raise ConfigError([(name, "is required to talk to the shop") for name in missing])
    bucket = None
    if settings.state_dsn:
        bucket = SharedTokenBucket(connect=lambda: state_database(settings), shop=url,
                                   rate_per_second=shop.requests_per_second)
    # Any: the keyword arguments of WooClient, each its own type, which `overrides` may replace.
    options: dict[str, Any] = {
        "url": url,
        "consumer_key": key,
        "consumer_secret": secret,
        "timeout_seconds": shop.timeout_seconds,
        "requests_per_second": shop.requests_per_second,
        "bucket": bucket,
        "max_attempts": shop.max_attempts,
        "verify": shop.ca_bundle or shop.verify_tls,
        "signature_method": shop.oauth_signature_method,
        "metrics": metrics,
    }
    options.update(overrides)
    return WooClient(**options)


def registrar(settings: Settings, *, client: WooClient, metrics: Metrics | None = None) -> WebhookRegistrar:
    """The registrar the `shop.webhooks` section and the first of EXSYNC_WEBHOOK_SECRETS describe, its
    record in the state database (close `registrar.record` when done)."""
    webhooks = settings.config.shop.webhooks
    problems = []
    if not webhooks.delivery_url:
        problems.append(("shop.webhooks.delivery_url", "is required to register webhooks"))
    if not settings.webhook_secrets:
        problems.append(("EXSYNC_WEBHOOK_SECRETS", "is required to register webhooks"))
    delivery_url = webhooks.delivery_url
    if problems or not delivery_url:
        raise ConfigError(problems)
    record = WebhookSecretStore(connect=lambda: state_database(settings), shop_url=client.url)
    return WebhookRegistrar(client=client, delivery_url=delivery_url, secret=settings.webhook_secrets[0],
                            topics=webhooks.topics, name_prefix=webhooks.name_prefix,
                            api_version=webhooks.api_version, metrics=metrics, record=record)


# -- capture ------------------------------------------------------------------------------------

def build_capture(settings: Settings, *, metrics: Metrics | None = None, publisher: Any = None,
                  sink: Any = None) -> tuple[ChangeCapture, Callable[[], None]]:
    """A ChangeCapture wired from the settings, and a `close()` for what it opened.

    The state gets a connection of its own (even on the company's database) because the scan
    holds a read transaction while chunks are recorded. Without `publisher` or `sink` it publishes
    through a publisher of its own.
    """
    metrics = metrics or Metrics()
    config = settings.config
    mapping = mapping_for(config)
    company_db = connect(settings.endpoint("EXSYNC_EXCHEQUER_DSN"), mapping=mapping)
    state_db = connect(settings.endpoint("EXSYNC_STATE_DSN"), mapping=mapping)
    own_publisher = None
    if publisher is None and sink is None:
        publisher = own_publisher = Publisher(url=settings.endpoint("EXSYNC_AMQP_URL"), topology=topology(config),
                                              metrics=metrics)
    steps = []
    if publisher is not None:
        step = order_progress_step(database=company_db, publisher=publisher, metrics=metrics)
        if step is not None:
            steps.append(step)
        if config.customers.enabled:
            accounts = AccountCapture(database=company_db, state_database=state_db, publisher=publisher,
                                      company=mapping.company, metrics=metrics,
                                      event_items=config.customers.event_items)
            steps.append(accounts.run_once)
    state = CaptureState(database=state_db, company=mapping.company,
                         lease_seconds=config.capture.lease_seconds).ensure()
    capture = ChangeCapture(
        reader=ExchequerReader(database=company_db), state=state,
        sink=sink or BusSink(publisher=publisher, company=mapping.company),
        locations=options_for(config).locations,
        event_items=config.capture.event_items, metrics=metrics, each_cycle=steps,
        runs=RunLog(database=state_db).ensure())

    def close() -> None:
        if own_publisher is not None:
            own_publisher.close()
        company_db.close()
        state_db.close()

    return capture, close


def run_capture_once(settings: Settings, *, metrics: Metrics | None = None) -> CaptureReport:
    """One capture cycle for the configured company (the demo's hook); returns its CaptureReport."""
    capture, close = build_capture(settings, metrics=metrics)
    try:
        report = capture.run_once()
        capture.state.release()
        return report
    finally:
        close()


# -- consumers ----------------------------------------------------------------------------------

def build_orders(settings: Settings, *, metrics: Metrics) -> OrdersConsumer:
    """The consumer `exsync consume orders` runs."""
    # This consumer owns order tracking: it alone exports the parked and overdue counts, read at each scrape.
    overdue_after_seconds = settings.config.orders.overdue_after_seconds
    state_dsn = settings.endpoint("EXSYNC_STATE_DSN")
    track_state_gauges(metrics, dsn=state_dsn, mapping=mapping_for(settings.config), gauges={
        "orders_parked": lambda database: OrderStore(database=database).counts().get("parked", 0),
        "orders_overdue": lambda database: OrderStore(database=database).overdue_count(
            paid_before=time.time() - overdue_after_seconds)})
    # Without shop credentials a role the order and the customer link do not give is "customer".
    shop = woo_client(settings, metrics=metrics) if settings.woo_url else None
    return OrdersConsumer(exchequer_dsn=settings.endpoint("EXSYNC_EXCHEQUER_DSN"), state_dsn=state_dsn,
                          config=settings.config, publisher=shared_publisher(settings, metrics=metrics),
                          metrics=metrics, shop=shop)


def build_order_writeback(settings: Settings, *, metrics: Metrics) -> OrderWritebackConsumer:
    """The consumer `exsync consume orders-writeback` runs."""
    return OrderWritebackConsumer(state_dsn=settings.endpoint("EXSYNC_STATE_DSN"), config=settings.config,
                                  client=woo_client(settings, metrics=metrics), metrics=metrics)


def build_woo_writer(settings: Settings, *, metrics: Metrics | None) -> WooWriter:
    """The woo-writer (`exsync consume woo-writer`, the stock audit, the product export)."""
    products = settings.config.products
    mapping = mapping_for(settings.config)
    free_stock = ExchequerFreeStock(dsn=settings.endpoint("EXSYNC_EXCHEQUER_DSN"), mapping=mapping,
                                    locations=options_for(settings.config).locations)
    return WooWriter(database=connect(settings.endpoint("EXSYNC_STATE_DSN"), mapping=mapping),
                     client=woo_client(settings, metrics=metrics), metrics=metrics,
                     flush_items=products.flush_items, max_item_attempts=products.max_item_attempts,
                     item_retry_seconds=products.item_retry_seconds, free_stock=free_stock,
                     stock_check_delay_seconds=products.stock_check_delay_seconds,
                     stock_audit_interval_seconds=products.stock_audit_interval_seconds,
                     lease_seconds=products.lease_seconds,
                     max_concurrent_requests=settings.config.shop.max_concurrent_requests)


def build_customers_export(settings: Settings, *, metrics: Metrics) -> CustomersConsumer:
    """The consumer `exsync consume customers-export` runs (and one-off syncs from the command line)."""
    return CustomersConsumer(exchequer_dsn=settings.endpoint("EXSYNC_EXCHEQUER_DSN"), state_dsn=settings.state_dsn,
                             config=settings.config, client=woo_client(settings, metrics=metrics),
                             wp_username=settings.wp_username,
                             wp_application_password=settings.wp_application_password, metrics=metrics)


def build_customers(settings: Settings, *, metrics: Metrics) -> CustomersConsumer:
    """The consumer `exsync consume customers` runs: it alone exports the conflicts waiting."""
    state_dsn = settings.endpoint("EXSYNC_STATE_DSN")
    track_state_gauges(metrics, dsn=state_dsn, mapping=mapping_for(settings.config), gauges={
        "customer_conflicts_waiting": lambda database: LinkStore(database=database).waiting()})
    return build_customers_export(settings, metrics=metrics)


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Process:
    queue: QueueSpec
    # `build(settings, *, metrics) -> consumer`, where a consumer has `handle(message)`, and may have
    # `on_idle()`, `close()`, and `thread_safe = True` (then `bus.handler_threads` handlers run at once)
    build: Callable[..., Any]


_PROCESSES = {
    "orders": _Process(queue=orders.QUEUE, build=build_orders),
    "orders-writeback": _Process(queue=order_writeback.QUEUE, build=build_order_writeback),
    "woo-writer": _Process(queue=woo_writer.QUEUE, build=build_woo_writer),
    "customers": _Process(queue=customers.QUEUE, build=build_customers),
    "customers-export": _Process(queue=customers.EXPORT_QUEUE, build=build_customers_export),
}
# name -> (queue, build): what `exsync consume NAME` runs
CONSUMERS: dict[str, tuple[str, Callable[..., Any]]] = {
    name: (process.queue.name, process.build) for name, process in _PROCESSES.items()}

# What each consumer talks to (ENDPOINT_VARIABLES in exsync.config); the shop's key and secret go
# with EXSYNC_WOO_URL. Each Deployment in k8s/ gets these Secret keys and no others.
CONSUMER_NEEDS = {
    "orders": ("EXSYNC_AMQP_URL", "EXSYNC_EXCHEQUER_DSN", "EXSYNC_STATE_DSN"),
    "orders-writeback": ("EXSYNC_AMQP_URL", "EXSYNC_STATE_DSN", "EXSYNC_WOO_URL"),
    # the writer reads Exchequer's free stock to correct the shop's (order checks, the stock audit)
    "woo-writer": ("EXSYNC_AMQP_URL", "EXSYNC_EXCHEQUER_DSN", "EXSYNC_STATE_DSN", "EXSYNC_WOO_URL"),
    "customers": ("EXSYNC_AMQP_URL", "EXSYNC_EXCHEQUER_DSN", "EXSYNC_STATE_DSN", "EXSYNC_WOO_URL"),
    "customers-export": ("EXSYNC_AMQP_URL", "EXSYNC_EXCHEQUER_DSN", "EXSYNC_STATE_DSN", "EXSYNC_WOO_URL"),
}


def build_consumer(name: str, settings: Settings, *, metrics: Metrics) -> Any:
    """Consumer `name` (a CONSUMERS key) built from the settings."""
    if name not in _PROCESSES:
        raise ConfigError([("consumer", f"unknown consumer {name!r}; one of {', '.join(sorted(_PROCESSES))}")])
    return _PROCESSES[name].build(settings, metrics=metrics)


def worker(settings: Settings, name: str, consumer: Any, *, metrics: Metrics,
           heartbeat: Callable[[], None] | None = None) -> Worker:
    """The bus Worker that runs `consumer` (consumer `name`'s) on its queue."""
    bus = settings.config.bus
    return Worker(url=settings.endpoint("EXSYNC_AMQP_URL"), queue=_PROCESSES[name].queue.name, handler=consumer.handle,
                  topology=topology(settings), prefetch=bus.prefetch,
                  concurrency=bus.handler_threads if getattr(consumer, "thread_safe", False) else 1,
                  metrics=metrics, on_idle=getattr(consumer, "on_idle", None), heartbeat=heartbeat)


# -- the woo-writer outside its consumer --------------------------------------------------------

def export_products(settings: Settings, *, metrics: Metrics | None = None,
                    progress: Callable[[int, int], None] | None = None) -> ExportReport:
    """Writes every web product to the shop (`exsync export products`); `progress(done, total)` after
    each shop request."""
    metrics = metrics or Metrics()
    writer = build_woo_writer(settings, metrics=metrics)
    try:
        capture, close = build_capture(settings, metrics=metrics, sink=WriterSink(writer=writer))
        try:
            return run_export(capture=capture, writer=writer, progress=progress,
                              wait_seconds=settings.config.products.lease_seconds)
        finally:
            close()
    finally:
        writer.close()


def start_writer_thread(settings: Settings, *, metrics: Metrics | None = None) -> Worker:
    """Runs the woo-writer on its queue in a daemon thread (the demo's in-process writer).

    Returns the Worker; `worker.stop()` ends it (the thread then closes the writer).
    """
    metrics = metrics or Metrics()
    writer = build_woo_writer(settings, metrics=metrics)
    running = Worker(url=settings.endpoint("EXSYNC_AMQP_URL"), queue=woo_writer.QUEUE.name, handler=writer.handle,
                     topology=topology(settings), metrics=metrics, on_idle=writer.on_idle)

    def run() -> None:
        try:
            running.run()
        finally:
            writer.close()

    threading.Thread(target=run, name="woo-writer", daemon=True).start()
    return running


# -- the webhook receiver -----------------------------------------------------------------------

def webhook_app(settings: Settings) -> Any:
    """The receiver's WSGI app as `exsync webhook` serves it."""
    from exsync.metrics import default_metrics
    from exsync.webhooks.app import DeliverySlots, create_app
    from exsync.webhooks.receiver import Receiver

    metrics = default_metrics()
    webhook = settings.config.webhook
    sending = shared_publisher(settings, metrics=metrics, publish_timeout_seconds=webhook.delivery_timeout_seconds)
    receiver = Receiver(secrets=settings.webhook_secrets, publisher=sending, metrics=metrics,
                        max_json_depth=webhook.max_json_depth)
    return create_app(
        receiver=receiver,
        publisher=sending,
        max_body_bytes=webhook.max_body_bytes,
        metrics=metrics,
        metrics_dir=settings.metrics_dir,
        # A burst beyond the slots waits (as many again, for half a delivery timeout at most: a burst
        # frees slots in milliseconds, a stalled broker not for a delivery timeout); the worker's
        # WEBHOOK_PROBE_CONNECTIONS beyond those are never taken by deliveries (gunicorn_conf).
        slots=DeliverySlots(slots=settings.webhook_connections, waiters=settings.webhook_connections,
                            wait_seconds=webhook.delivery_timeout_seconds / 2),
        internal_port=int(settings.metrics_bind.rpartition(":")[2]) if settings.metrics_bind else None,
    )
