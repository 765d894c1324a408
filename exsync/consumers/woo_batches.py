"""The woo-writer's batches in flight: several `/products/batch` requests at once, adapting to the shop.

A host serves several PHP requests at once (a pool of workers), and a batch spends most of its
time in the shop's per-item work, so one batch at a time leaves the host's other workers idle.
`BatchPipeline` keeps up to `AdaptiveConcurrency.limit` batches in flight on threads of its own
while the caller's thread prepares the next batch and settles each answer (all database work stays
on the caller's thread). A SKU is never in two batches in flight: a batch holding a SKU still in
flight waits until that one is settled, so the newer value is sent after the older was confirmed.

The limit starts at the setting (`shop.max_concurrent_requests`), halves on a 429, 503 or timeout
(heard from the client's retries or seen in an answer), at most once for the batches sent before
that halving, and grows by one after a run of clean batches, never above the setting.
"""

import concurrent.futures
import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from exsync.metrics import Metrics
from exsync.state.products import PendingChange, Settled
from exsync.woo import WooError
from exsync.woo.errors import WooTransportError

__all__ = ["DEFAULT_CLEAN_BATCHES_TO_GROW", "PRESSURE_STATUSES", "AdaptiveConcurrency", "Answered", "Batch",
           "BatchPipeline", "FlushReport", "Operation", "Outcome", "is_pressure", "match_answers"]

log = logging.getLogger(__name__)

# Clean batches in a row (none met a 429, 503 or timeout) before one more may be in flight.
DEFAULT_CLEAN_BATCHES_TO_GROW = 4
# Answers meaning the host (or its firewall) is overloaded: send less at once.
PRESSURE_STATUSES = (429, 503)


def is_pressure(error: BaseException | None) -> bool:
    """Whether an error says the shop is overloaded: a 429 or 503, or a request sent and not answered."""
    if isinstance(error, WooTransportError):
        return bool(error.sent)
    return isinstance(error, WooError) and getattr(error, "status", None) in PRESSURE_STATUSES


class AdaptiveConcurrency:
    """How many batches may be in flight now: `limit`, between 1 and `maximum`; thread-safe.

    Each batch takes a `ticket()` when sent; a pressure signal halves the limit unless it already
    halved since that ticket (several batches in flight meeting one storm halve it once)."""

    def __init__(self, *, maximum: int, clean_batches_to_grow: int = DEFAULT_CLEAN_BATCHES_TO_GROW,
                 metrics: Metrics | None = None) -> None:
        if maximum < 1:
            raise ValueError("at least one batch must be allowed in flight")
        self.maximum = maximum
        self.clean_batches_to_grow = clean_batches_to_grow
        self.metrics = metrics or Metrics()
        self.limit = maximum
        self.halvings = 0
        self.growths = 0
        self._generation = 0
        self._clean = 0
        self._lock = threading.Lock()
        self.metrics.set("woo_writer_concurrency", self.limit)

    def ticket(self) -> int:
        with self._lock:
            return self._generation

    def pressure(self, ticket: int) -> bool:
        """A batch sent with `ticket` met a 429, 503 or timeout; returns whether the limit halved."""
        with self._lock:
            if ticket != self._generation:
                return False
            self._generation += 1
            self._clean = 0
            self.limit = max(1, self.limit // 2)
            self.halvings += 1
            limit = self.limit
        log.info("woo-writer: the shop is under pressure; %d batch(es) in flight at most", limit)
        self.metrics.set("woo_writer_concurrency", limit)
        return True

    def clean(self, ticket: int) -> bool:
        """A batch sent with `ticket` went through clean; returns whether the limit grew."""
        with self._lock:
            if ticket != self._generation:
                return False  # sent before the last halving: it says nothing about the shop now
            self._clean += 1
            if self._clean < self.clean_batches_to_grow or self.limit >= self.maximum:
                return False
            self._clean = 0
            self.limit += 1
            self.growths += 1
            limit = self.limit
        self.metrics.set("woo_writer_concurrency", limit)
        return True


@dataclasses.dataclass(frozen=True, kw_only=True)
class Batch:
    """One request's worth of work: the SKUs it writes and what the caller needs to settle it."""

    skus: frozenset
    work: Any


@dataclasses.dataclass(frozen=True, kw_only=True)
class Outcome:
    """What settling a batch's answer found: stop sending more (the shop refuses for now), and
    whether the answer showed the shop under pressure (items refused with 429, 503, a timeout)."""

    stop: bool = False
    pressure: bool = False


class BatchPipeline:
    """Sends batches on up to `concurrency.maximum` threads, at most `concurrency.limit` at once, and
    hands each answer back on the caller's thread as it comes.

    `send(batch)` runs on a pipeline thread and returns the answer; `settle(batch, answer)` runs on
    the caller's thread and returns an Outcome (a stop still settles what is in flight).
    `before_send()` runs on the caller's thread before each batch goes (the writer renews its lease)."""

    def __init__(self, *, concurrency: AdaptiveConcurrency, send: Callable[[Batch], Any],
                 settle: Callable[[Batch, Any], Outcome], before_send: Callable[[], None] = lambda: None) -> None:
        self.concurrency = concurrency
        self.send = send
        self.settle = settle
        self.before_send = before_send
        self.peak_in_flight = 0
        self._local = threading.local()

    def heard(self, error: WooError) -> None:
        """A client retry listener: a 429, 503 or timeout retried inside a batch's request marks that batch."""
        if is_pressure(error) and getattr(self._local, "sending", False):
            self._local.pressured = True

    def _send(self, batch: Batch) -> tuple[Any, bool]:
        self._local.sending, self._local.pressured = True, False
        try:
            return self.send(batch), self._local.pressured
        finally:
            self._local.sending = False

    def run(self, batches: Iterable[Batch]) -> None:
        """Sends every batch (prepared lazily, as slots free up) until a settle says stop."""
        in_flight: dict[concurrent.futures.Future, tuple[int, Batch, int]] = {}
        skus_in_flight: set = set()
        sent = 0
        stop = False

        def settle_some() -> None:
            nonlocal stop
            done, _ = concurrent.futures.wait(in_flight, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: in_flight[f][0]):
                _, batch, ticket = in_flight.pop(future)
                answer, heard_pressure = future.result()
                skus_in_flight.difference_update(batch.skus)
                outcome = self.settle(batch, answer)
                stop = stop or outcome.stop
                if heard_pressure or outcome.pressure:
                    self.concurrency.pressure(ticket)
                else:
                    self.concurrency.clean(ticket)

        with concurrent.futures.ThreadPoolExecutor(max_workers=self.concurrency.maximum,
                                                   thread_name_prefix="woo-writer-batch") as pool:
            for batch in batches:
                while in_flight and (len(in_flight) >= self.concurrency.limit or batch.skus & skus_in_flight):
                    settle_some()
                if stop:
                    break
                self.before_send()
                ticket = self.concurrency.ticket()
                in_flight[pool.submit(self._send, batch)] = (sent, batch, ticket)
                sent += 1
                skus_in_flight.update(batch.skus)
                self.peak_in_flight = max(self.peak_in_flight, len(in_flight))
            while in_flight:
                settle_some()


@dataclasses.dataclass(kw_only=True)
class FlushReport:
    """What one flush settled."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    retry_later: int = 0
    requests: int = 0

    def add(self, other: "FlushReport") -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    @property
    def done(self) -> int:
        return self.created + self.updated + self.unchanged + self.failed


@dataclasses.dataclass(frozen=True, kw_only=True)
class Operation:
    """One item of a batch: the pending change, the shop's product id (None: to create), the values
    the product will have, and what is sent."""

    pending: PendingChange
    product_id: int | None
    desired: dict
    payload: dict


@dataclasses.dataclass(frozen=True, kw_only=True)
class Answered:
    """A batch's answer sorted out: the changes the shop confirmed (as Settled), those it refused
    (pending change, error or None when no answer came), and how many were created and updated."""

    ok: list
    failed: list
    created: int
    updated: int


def match_answers(operations: list[Operation], result: Any) -> Answered:
    """Pairs each operation with its answer (the same position among the same action's answers)."""
    answers = {("create", index): answer for index, answer in
               enumerate(a for a in result.items if a.action == "create")}
    answers.update({("update", index): answer for index, answer in
                    enumerate(a for a in result.items if a.action == "update")})
    ok, failed, written = [], [], {"create": 0, "update": 0}
    for action, ops in (("create", [op for op in operations if op.product_id is None]),
                        ("update", [op for op in operations if op.product_id is not None])):
        for index, op in enumerate(ops):
            answer = answers.get((action, index))
            if answer is not None and answer.ok:
                ok.append(Settled(pending=op.pending, product_id=int(answer.body.get("id") or op.product_id or 0),
                                  values=op.desired))
                written[action] += 1
            else:
                failed.append((op.pending, answer.error if answer is not None else None))
    return Answered(ok=ok, failed=failed, created=written["create"], updated=written["update"])
