"""The order lifecycle: when a shop order counts as paid, and which statuses end it.

WooCommerce moves an order forward through `pending` -> `on-hold` and/or `processing` ->
`completed`; `cancelled`, `refunded`, `failed` and `trash` are exits. Webhooks arrive in any
order, and WooCommerce collapses the changes of one second into one delivery of the last state,
so an order paid and completed (or paid and cancelled) quickly may only ever be seen in its last
state. The orders consumer therefore asks of every version it sees whether it proves the order
was paid; proof is a fact that holds whatever arrives later, and a paid order is imported.

A version proves payment when its status is one of `orders.import_statuses`, or lies at or
beyond the first of them in the forward lifecycle, or when it shows the order reached
`processing`: it carries `date_paid` (WooCommerce sets it on reaching processing or completed)
or its status is `refunded` (money came back, so it was taken). A custom status a site registers
proves payment only when it is listed in `import_statuses` or the body carries `date_paid`.
"""

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["EXIT_STATUSES", "FORWARD_STATUSES", "Lifecycle"]

FORWARD_STATUSES = ("pending", "on-hold", "processing", "completed")
EXIT_STATUSES = ("cancelled", "refunded", "failed", "trash")
# WooCommerce's paid statuses begin here: date_paid is set when an order reaches one of them.
_PAID_RANK = FORWARD_STATUSES.index("processing")
_REFUNDED = "refunded"


def _rank(status: str) -> int:
    return FORWARD_STATUSES.index(status) if status in FORWARD_STATUSES else -1


def _carries_date_paid(body: Mapping[str, Any]) -> bool:
    return bool(body.get("date_paid_gmt") or body.get("date_paid"))


class Lifecycle:
    """The lifecycle rule for one configuration's `orders.import_statuses`."""

    def __init__(self, *, import_statuses: Iterable[object]) -> None:
        self.import_statuses = frozenset(str(status) for status in import_statuses)
        ranks = [_rank(status) for status in self.import_statuses if status in FORWARD_STATUSES]
        # The first forward status imported; None when only custom statuses are.
        self._threshold = min(ranks) if ranks else None

    def shows_payment(self, body: Mapping[str, Any]) -> bool:
        """Whether this version of an order proves it has been paid (see the module's text)."""
        status = str(body.get("status") or "")
        if status in self.import_statuses and status not in EXIT_STATUSES:
            return True
        if self._threshold is None:
            return False
        rank = _rank(status)
        if status == _REFUNDED or _carries_date_paid(body):
            rank = max(rank, _PAID_RANK)
        return rank >= self._threshold

    @staticmethod
    def ends(status: str) -> bool:
        """Whether `status` takes the order out of the lifecycle (cancelled, refunded, failed, trash)."""
        return status in EXIT_STATUSES
