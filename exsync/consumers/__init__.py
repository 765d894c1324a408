"""Consumers: one module per queue and the rules they apply."""

from exsync.consumers.customers import CustomersConsumer
from exsync.consumers.errors import ConsumerError, NoteInFlightError, OrderDataError
from exsync.consumers.order_writeback import OrderWritebackConsumer
from exsync.consumers.orders import OrdersConsumer
from exsync.consumers.product_export import run_export
from exsync.consumers.runner import run_consumer
from exsync.consumers.shipping_methods import import_shipping_methods
from exsync.consumers.woo_writer import WooWriter

__all__ = [
    "ConsumerError",
    "CustomersConsumer",
    "NoteInFlightError",
    "OrderDataError",
    "OrderWritebackConsumer",
    "OrdersConsumer",
    "WooWriter",
    "import_shipping_methods",
    "run_consumer",
    "run_export",
]
