"""`exsync export products`, and the woo-writer run in-process: the paths that skip the bus.

The first full export reads every web product as a capture cycle does (with every product counted
as changed), hands the changes straight to the woo-writer's durable store instead of the bus, and
flushes under the woo-writer's lease (waiting for a running consumer's flush to end first). Should
the lease stay taken, the changes are stored: the running woo-writer writes them on its next tick.
The capture's fingerprints are recorded once the writer has stored the changes, so the capture that
runs afterwards publishes only what changes later.
"""

import dataclasses
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from exsync.consumers.woo_writer import FlushReport, WooWriter, WriterBusyError
from exsync.consumers.woo_writer import build as build_writer
from exsync.exchequer.capture import build_capture
from exsync.metrics import Metrics

if TYPE_CHECKING:  # for annotations only: the bus's Worker is imported where it is started
    from exsync.bus import Worker
    from exsync.config import Settings

__all__ = ["ExportReport", "WriterSink", "export_products", "start_writer_thread"]


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
    failures: list[tuple[Any, ...]]  # (sku, attempts, error), as WooWriter.failures() gives them
    skipped: bool
    # the woo-writer's lease stayed taken: the changes are stored for the running writer to send
    handed_over: bool = False


def export_products(settings: "Settings", *, metrics: Metrics | None = None,
                    progress: Callable[[int, int], object] | None = None) -> ExportReport:
    """Writes every web product to the shop; `progress(done, total)` after each shop request."""
    metrics = metrics or Metrics()
    writer = build_writer(settings, metrics=metrics)
    capture, close = build_capture(settings, metrics=metrics, sink=WriterSink(writer=writer))
    try:
        scan = capture.run_once(force=True)
        capture.state.release()
        handed_over = False
        flush = FlushReport()
        if not scan.skipped:
            try:
                flush = writer.flush(progress=progress, wait_seconds=settings.config["products"]["lease_seconds"])
            except WriterBusyError:
                handed_over = True
        return ExportReport(exported=scan.exported, flush=flush, failures=writer.failures(), skipped=scan.skipped,
                            handed_over=handed_over)
    finally:
        close()
        writer.close()


def start_writer_thread(settings: "Settings", *, metrics: Metrics | None = None) -> "Worker":
    """Runs the woo-writer on its queue in a daemon thread (the demo's in-process writer).

    Returns the Worker; `worker.stop()` ends it (the thread then closes the writer).
    """
    from exsync.bus import Topology, Worker

    metrics = metrics or Metrics()
    writer = build_writer(settings, metrics=metrics)
    worker = Worker(url=settings.amqp_url, queue="woo.write", handler=writer.handle,
                    topology=Topology.from_config(settings.config), metrics=metrics, on_idle=writer.on_idle)

    def run() -> None:
        try:
            worker.run()
        finally:
            writer.close()

    threading.Thread(target=run, name="woo-writer", daemon=True).start()
    return worker
