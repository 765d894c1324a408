"""`exsync export products`, and the woo-writer run in-process: the paths that skip the bus.

The first full export reads every web product as a capture cycle does (with every product counted
as changed), hands the changes straight to the woo-writer's durable store instead of the bus, and
flushes under the woo-writer's lease (waiting for a running consumer's flush to end first). Should
the lease stay taken, the changes are stored: the running woo-writer writes them on its next tick.
The capture's fingerprints are recorded once the writer has stored the changes, so the capture that
runs afterwards publishes only what changes later.
"""

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from exsync.consumers.woo_writer import FlushReport, WooWriter, WriterBusyError
from exsync.state.products import Failure

__all__ = ["ExportReport", "WriterSink", "run_export"]


class WriterSink:
    """A capture sink that stores changes in the woo-writer (committed) rather than publishing them."""

    def __init__(self, *, writer: WooWriter) -> None:
        self.writer = writer

    def send(self, *, products: Iterable[Any], stock: Iterable[Any]) -> None:
        self.writer.accept(products=products, stock=stock)


@dataclasses.dataclass(kw_only=True)
class ExportReport:
    """The export's summary: the capture's scan and what the writer did with it."""

    exported: int
    flush: FlushReport
    failures: list[Failure]  # (sku, attempts, error), as WooWriter.failures() gives them
    skipped: bool
    # the woo-writer's lease stayed taken: the changes are stored for the running writer to send
    handed_over: bool = False


def run_export(*, capture: Any, writer: WooWriter, wait_seconds: float,
               progress: Callable[[int, int], None] | None = None) -> ExportReport:
    """One forced capture cycle into the writer (`capture`'s sink a WriterSink on `writer`), then a
    flush under the writer's lease, waiting up to `wait_seconds` for it (exsync.wiring builds both)."""
    scan = capture.run_once(force=True)
    capture.state.release()
    handed_over = False
    flush = FlushReport()
    if not scan.skipped:
        try:
            flush = writer.flush(progress=progress, wait_seconds=wait_seconds)
        except WriterBusyError:
            handed_over = True
    return ExportReport(exported=scan.exported, flush=flush, failures=writer.failures(), skipped=scan.skipped,
                        handed_over=handed_over)
