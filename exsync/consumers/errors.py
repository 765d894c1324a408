"""The consumers' errors, rooted in one class under exsync's root."""

from exsync.errors import ExsyncError

__all__ = ["ConsumerError", "CustomerBusyError", "LinkChangedError", "NoteInFlightError", "OrderDataError"]


class ConsumerError(ExsyncError):
    """Anything a consumer raises on purpose."""


class OrderDataError(ConsumerError):
    """An order body the consumer cannot turn into a document (not a dict, no id...)."""


class NoteInFlightError(ConsumerError):
    """Another worker claimed this note moments ago and has not finished: retry later."""


class LinkChangedError(ConsumerError):
    """Another worker synced the same customer while this sync ran: retry from fresh state."""


class CustomerBusyError(ConsumerError):
    """Another worker holds this customer's lease: retry later."""
