"""`exsync consume NAME`: runs one consumer's handler on its queue under the bus's Worker."""

import importlib

from exsync.bus import BrokerUnavailable, Topology, Worker
from exsync.consumers.connections import use_broker
from exsync.errors import ConfigError
from exsync.metrics import default_metrics

__all__ = ["CONSUMERS", "CONSUMER_NEEDS", "run_consumer"]

# name -> (queue, "module:factory"); a factory is `build(settings, *, metrics) -> Consumer`, where
# a Consumer has `handle(message)`, and may have `on_idle()`, `close()`, and `thread_safe = True`
# (then `bus.handler_threads` handlers run at once).
CONSUMERS = {
    "orders": ("orders.import", "exsync.consumers.orders:build"),
    "orders-writeback": ("orders.writeback", "exsync.consumers.order_writeback:build"),
    "woo-writer": ("woo.write", "exsync.consumers.woo_writer:build"),
    "customers": ("customers.import", "exsync.consumers.customers:build"),
    "customers-export": ("customers.export", "exsync.consumers.customers:build_export"),
}

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


def _factory(path):
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def run_consumer(settings, name, *, liveness=None, readiness=None):
    """Runs consumer `name` until SIGTERM; its loop beats `liveness` and `readiness` learns whether
    it is consuming (both from exsync.health, optional)."""
    if name not in CONSUMERS:
        raise ConfigError([("consumer", f"unknown consumer {name!r}; one of {', '.join(sorted(CONSUMERS))}")])
    queue, factory = CONSUMERS[name]
    metrics = default_metrics()
    use_broker(settings.amqp_url)
    consumer = _factory(factory)(settings, metrics=metrics)
    worker = Worker(
        url=settings.amqp_url,
        queue=queue,
        handler=consumer.handle,
        topology=Topology.from_config(settings.config),
        prefetch=settings.config["bus"]["prefetch"],
        concurrency=settings.config["bus"]["handler_threads"] if getattr(consumer, "thread_safe", False) else 1,
        metrics=metrics,
        on_idle=getattr(consumer, "on_idle", None),
        heartbeat=liveness.beat if liveness is not None else None,
    )
    if readiness is not None:
        def consuming():
            if not worker.consuming:
                raise BrokerUnavailable(f"not consuming {queue}")

        readiness.add("broker", consuming)
    try:
        worker.run()
    finally:
        close = getattr(consumer, "close", None)
        if close is not None:
            close()
    return 0
