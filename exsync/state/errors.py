"""The state package's errors, under exsync's root.

The state tables stand below the Exchequer layer, whose database connection they use: so a unique
key's refusal is known here by a base class, which the database layer's `DuplicateKeyError` extends
(see exsync.exchequer.errors), and caught here without an import running up.
"""

from exsync.errors import ExsyncError

__all__ = ["DuplicateRowError", "LinkChangedError", "StateError"]


class StateError(ExsyncError):
    """Anything exsync's own state tables raise on purpose."""


class DuplicateRowError(StateError):
    """A unique key refused a row; the database layer raises its `DuplicateKeyError`, a subclass."""


class LinkChangedError(StateError):
    """Another worker synced the same customer while this sync ran: retry from fresh state."""
