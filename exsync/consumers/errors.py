"""The consumers' errors, rooted in one class under exsync's root."""

from exsync.bus.errors import PermanentError
from exsync.errors import ExsyncError
from exsync.state.errors import LinkChangedError

__all__ = ["ConsumerError", "CustomerBusyError", "LinkChangedError", "NoteInFlightError", "OrderDataError",
           "OrderMoneyError"]


class ConsumerError(ExsyncError):
    """Anything a consumer raises on purpose."""


class OrderDataError(ConsumerError, PermanentError):
    """An order body the consumer cannot turn into a document (not a dict, no id...).

    Permanent: the same body fails the same way every time, so it is parked at once, never retried.
    """


class OrderMoneyError(OrderDataError):
    """An order whose money is not sane: not finite, out of bounds, or its lines do not make its total."""


class NoteInFlightError(ConsumerError):
    """Another worker claimed this note moments ago and has not finished: retry later."""


class CustomerBusyError(ConsumerError):
    """Another worker holds this customer's lease: retry later."""
