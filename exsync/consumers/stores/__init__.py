"""Stores of the consumers' own state: the SQL beside the rules that use it."""

from exsync.consumers.stores.products import (
    WRITER_TABLES,
    Failure,
    IncomingChange,
    KnownProduct,
    PendingChange,
    Refusal,
    Settled,
    WriterStore,
)

__all__ = [
    "WRITER_TABLES",
    "Failure",
    "IncomingChange",
    "KnownProduct",
    "PendingChange",
    "Refusal",
    "Settled",
    "WriterStore",
]
