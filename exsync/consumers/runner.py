"""`exsync consume NAME`: runs one consumer's handler on its queue under the bus's Worker."""

import importlib

from exsync.bus import Topology, Worker
from exsync.errors import ConfigError
from exsync.metrics import default_metrics

__all__ = ["CONSUMERS", "run_consumer"]

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


def _factory(path):
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def run_consumer(settings, name):
    if name not in CONSUMERS:
        raise ConfigError([("consumer", f"unknown consumer {name!r}; one of {', '.join(sorted(CONSUMERS))}")])
    queue, factory = CONSUMERS[name]
    metrics = default_metrics()
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
    )
    try:
        worker.run()
    finally:
        close = getattr(consumer, "close", None)
        if close is not None:
            close()
    return 0
