"""What exsync measures, behind one interface with a null implementation.

Code records through a `Metrics` object it is handed; the base class records nothing, so
libraries and tests need no Prometheus. `PrometheusMetrics` registers every metric in `SPECS`
(one table, so names and labels are reviewed in one place: `exsync_` prefix, base units,
counters exposed with `_total`, never an id as a label).
"""

import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import prometheus_client

from exsync import __version__

__all__ = ["Metrics", "NullMetrics", "PrometheusMetrics", "Spec", "SPECS", "Timing", "LATENCY_BUCKETS_SECONDS",
           "build_labels", "default_metrics"]

LATENCY_BUCKETS_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Spec:
    name: str
    kind: str  # counter | histogram | gauge
    documentation: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = LATENCY_BUCKETS_SECONDS


SPECS = (
    # webhooks
    Spec(name="webhook_requests", kind="counter", labels=("topic", "outcome"),
         documentation="Webhook requests by topic and outcome (accepted, ping, parked, unauthorized, ...)."),
    Spec(name="webhook_unauthorized", kind="counter", labels=("reason",),
         documentation="Webhook requests refused 401, by reason (missing_signature, bad_signature, no_secrets)."),
    Spec(name="webhook_request_duration_seconds", kind="histogram", labels=("outcome",),
         documentation="Time to answer a webhook request, broker confirm included."),
    # bus
    Spec(name="bus_publish_duration_seconds", kind="histogram", labels=("exchange",),
         documentation="Time from publish to broker confirm."),
    Spec(name="bus_messages_published", kind="counter", labels=("exchange", "outcome"),
         documentation="Messages published, by outcome (confirmed, unroutable, nacked, unavailable)."),
    Spec(name="bus_publish_retries", kind="counter", labels=("exchange",),
         documentation="Publishes sent again on a new connection after theirs was lost before the confirm."),
    Spec(name="bus_messages_consumed", kind="counter", labels=("queue", "outcome"),
         documentation="Messages consumed, by outcome (ok, retried, parked)."),
    Spec(name="bus_messages_retried", kind="counter", labels=("queue",),
         documentation="Messages sent to a retry queue after a failure."),
    Spec(name="bus_messages_parked", kind="counter", labels=("queue",),
         documentation="Messages parked on <queue>.dead after their last attempt."),
    Spec(name="bus_handler_duration_seconds", kind="histogram", labels=("queue",),
         documentation="Time a consumer's handler took for one message."),
    # The process's own view of the broker, so an outage that keeps every request away (a failing
    # /readyz) still shows: 1 connected, 0 the last attempt failed; no series before the first try.
    Spec(name="bus_connected", kind="gauge", labels=("client",),
         documentation="1 while this process's link to RabbitMQ is up, 0 after its last attempt failed, "
                       "by client (consumer, publisher)."),
    Spec(name="dead_letters_replayed", kind="counter", labels=("queue", "outcome"),
         documentation="Messages a person sent back from a dead queue (exsync dead-letters replay), counted by "
                       "the consumer that handled them, by outcome (ok, retried, parked)."),
    Spec(name="dead_letters_dropped", kind="counter", labels=("queue",),
         documentation="Parked messages deleted by a person (exsync dead-letters drop), counted by that "
                       "command (each drop is also logged)."),
    # woo (the shop's REST API, the registrar, the reconciler)
    Spec(name="woo_requests", kind="counter", labels=("method", "endpoint", "status"),
         documentation="Requests to the shop by normalised route (never an id) and HTTP status (or 'error')."),
    Spec(name="woo_request_duration_seconds", kind="histogram", labels=("method", "endpoint"),
         buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
         documentation="Time for one request to the shop, one attempt."),
    Spec(name="woo_request_retries", kind="counter", labels=("endpoint", "reason"),
         documentation="Requests to the shop retried, by reason (429, 5xx, transport)."),
    Spec(name="woo_batch_items", kind="counter", labels=("endpoint", "outcome"),
         documentation="Items sent in batch requests, by outcome (ok, error)."),
    Spec(name="woo_webhooks", kind="gauge", labels=("status",),
         documentation="The shop's webhooks owned by exsync, by status (active, paused, disabled)."),
    Spec(name="woo_reconciler_published", kind="counter", labels=("resource",),
         documentation="Resources the reconciler published because they were modified since its watermark."),
    Spec(name="woo_reconciler_watermark_timestamp_seconds", kind="gauge", labels=("resource",),
         documentation="The reconciler's watermark (the newest date_modified_gmt confirmed on the bus)."),
    Spec(name="reconcile_last_success_timestamp_seconds", kind="gauge",
         documentation="When the reconciler last finished a pass without error (a stall alert's clock)."),
    Spec(name="woo_reconciler_run_duration_seconds", kind="histogram", labels=("outcome",),
         buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
         documentation="Time for one reconciler pass over orders and customers."),
    # exchequer
    Spec(name="exchequer_writes", kind="counter", labels=("operation", "outcome"),
         documentation="Writes to Exchequer by operation and outcome (created, existing, updated, failed)."),
    Spec(name="exchequer_write_duration_seconds", kind="histogram", labels=("operation",),
         documentation="Time one write to Exchequer took, retries included."),
    Spec(name="exchequer_agent_commands", kind="counter", labels=("operation", "outcome"),
         documentation="Write commands the Exchequer agent performed through its Toolkit, by outcome "
                       "(created, done, failed)."),
    Spec(name="exchequer_agent_command_duration_seconds", kind="histogram", labels=("operation",),
         documentation="Time the Exchequer agent took to perform one command."),
    Spec(name="exchequer_agent_timeouts", kind="counter", labels=("operation",),
         documentation="Write commands the agent did not answer in time (the write is retried)."),
    # the order pipeline
    Spec(name="orders_processed", kind="counter", labels=("outcome",),
         documentation="Order events handled, by outcome (imported, parked, stale, waiting, deleted, ...)."),
    Spec(name="orders_parked", kind="gauge",
         documentation="Orders parked in order tracking (unknown SKU, bad data), read from it at each scrape by "
                       "the orders consumer."),
    Spec(name="orders_overdue", kind="gauge",
         documentation="Orders paid and not imported for longer than orders.overdue_after_seconds, read from "
                       "tracking at each scrape by the orders consumer (alert when above 0)."),
    Spec(name="orders_cancelled_after_import", kind="counter",
         documentation="Imported orders cancelled, refunded, failed or trashed in the shop afterwards (their "
                       "documents stay for a person: exsync orders status)."),
    Spec(name="order_import_duration_seconds", kind="histogram",
         documentation="Time to turn one order into its Exchequer documents."),
    Spec(name="order_import_lag_seconds", kind="histogram",
         buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800, 3600, 14400),
         documentation="Time from the order's event (the webhook stored, or the reconciler's publish) to its "
                       "documents in Exchequer, retries and parking included."),
    Spec(name="order_notes_written", kind="counter", labels=("kind", "outcome"),
         documentation="Order notes and status changes sent to the shop, by kind and outcome (written, repeat)."),
    Spec(name="order_progress_published", kind="counter", labels=("doc_type",),
         documentation="Delivery notes (SDN) and invoices (SIN) raised from imported orders, published."),
    Spec(name="exchequer_write_retries", kind="counter", labels=("operation",),
         documentation="Write transactions retried after a deadlock, a busy database or a taken account code."),
    # change capture (Exchequer -> bus)
    Spec(name="capture_cycle_duration_seconds", kind="histogram", labels=("outcome",),
         buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
         documentation="Time for one change-capture cycle (scan, diff, publish, record), by outcome."),
    Spec(name="capture_rows_scanned", kind="counter",
         documentation="Stock rows read by change capture."),
    Spec(name="capture_changes_published", kind="counter", labels=("kind",),
         documentation="Changed SKUs published (confirmed) by change capture, by kind (product, stock)."),
    Spec(name="capture_account_changes_published", kind="counter",
         documentation="New or changed customer accounts published (confirmed) by change capture."),
    Spec(name="capture_last_success_timestamp_seconds", kind="gauge",
         documentation="When change capture last finished a cycle without error (a stall alert's clock)."),
    Spec(name="capture_lag_seconds", kind="gauge",
         documentation="Age of the oldest change seen but not yet published (0 between cycles)."),
    # woo writer (bus -> shop products)
    Spec(name="woo_writer_changes", kind="counter", labels=("outcome",),
         documentation="Changed SKUs the writer settled, by outcome (created, updated, unchanged, stale, failed, "
                       "corrected: stock set back to Exchequer's after the shop's drifted); "
                       "exsync_woo_requests_total over created+updated gives requests per changed SKU."),
    Spec(name="woo_writer_batch_items", kind="histogram", buckets=(1, 5, 10, 25, 50, 75, 90, 100),
         documentation="Items in each products batch request the writer sent."),
    Spec(name="woo_writer_concurrency", kind="gauge",
         documentation="Product batches the writer may have in flight now (halved on 429/503/timeout, "
                       "grown by one after clean batches, never above shop.max_concurrent_requests)."),
    Spec(name="woo_writer_pending", kind="gauge",
         documentation="SKUs stored by the writer and not yet written to the shop (failed ones excluded)."),
    Spec(name="stock_drift_found", kind="counter", labels=("source",),
         documentation="Products whose stock in the shop differed from Exchequer's free stock when read, by what "
                       "read it (order: a check after an order moved the shop's stock; audit: the stock audit)."),
    Spec(name="stock_audit_last_success_timestamp_seconds", kind="gauge",
         documentation="When the last stock audit (every product's stock in the shop against Exchequer's) finished."),
    # customers (two-way sync)
    Spec(name="customer_syncs", kind="counter", labels=("source", "outcome"),
         documentation="Customers synced, by what asked (shop, exchequer, person) and outcome (created, updated, "
                       "unchanged, conflict, deleted, not_exported, no_email, ...)."),
    Spec(name="customer_fields_synced", kind="counter", labels=("side", "field"),
         documentation="Customer fields written, by the side written to (woo, exchequer) and field."),
    Spec(name="customer_conflicts", kind="counter", labels=("field",),
         documentation="Fields changed differently on both sides and left for a person (policy manual)."),
    Spec(name="customer_values_overridden", kind="counter", labels=("field", "policy"),
         documentation="Customer fields held differently on both sides that a policy decided (the loser's value "
                       "recorded: exsync customers conflicts --all), by field and policy (woo, exchequer, newest, "
                       "manual)."),
    Spec(name="customer_conflicts_waiting", kind="gauge",
         documentation="Customer conflicts recorded and not yet resolved by a person (exsync customers conflicts), "
                       "read at each scrape by the customers consumer (not customers-export)."),
    Spec(name="customer_roles_skipped", kind="counter",
         documentation="Wholesale role changes not made for want of WordPress credentials (retried next sync)."),
    # the build
    Spec(name="build_info", kind="gauge", labels=("version", "commit"),
         documentation="Always 1: the version and commit this process runs (EXSYNC_COMMIT, set at image build)."),
)


@dataclasses.dataclass(kw_only=True)
class Timing:
    """What a `Metrics.timed()` block is handed: `labels` to complete with what is known only at the
    end (an outcome), and `skip()` for a block whose time should not count (it ended another way)."""

    labels: dict[str, str]
    skipped: bool = False

    def skip(self) -> None:
        self.skipped = True


class Metrics:
    """The interface; records nothing."""

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        pass

    def observe(self, name: str, value: float, **labels: str) -> None:
        pass

    def set(self, name: str, value: float, **labels: str) -> None:
        pass

    def track(self, name: str, read: Callable[[], float]) -> None:
        """Makes gauge `name` (no labels) read `read()` whenever it is collected."""

    @contextlib.contextmanager
    def timed(self, name: str, *, observe_errors: bool = True, **labels: str) -> Iterator[Timing]:
        """Observes how long the block took (seconds, `time.perf_counter`) as histogram `name`.

        A block that raises is observed too unless `observe_errors` is false (a duration of what
        succeeded). Recording goes through `observe`, so the null base records nothing and a
        subclass that only overrides `observe` sees every timing.
        """
        timing = Timing(labels=dict(labels))
        started = time.perf_counter()
        failed = True
        try:
            yield timing
            failed = False
        finally:
            if not timing.skipped and (observe_errors or not failed):
                self.observe(name, time.perf_counter() - started, **timing.labels)


NullMetrics = Metrics
_Metric = prometheus_client.Counter | prometheus_client.Histogram | prometheus_client.Gauge


class PrometheusMetrics(Metrics):
    """Records to prometheus_client (multiprocess-safe when PROMETHEUS_MULTIPROC_DIR is set)."""

    def __init__(self, *, registry: prometheus_client.CollectorRegistry = prometheus_client.REGISTRY,
                 specs: Iterable[Spec] = SPECS) -> None:
        self._metrics: dict[str, _Metric] = {}
        self._children: dict[tuple[object, ...], Any] = {}
        self._registry = registry
        self._deferred: dict[str, Spec] = {}
        self._lock = threading.Lock()
        for spec in specs:
            if spec.kind == "gauge" and not spec.labels:
                # A gauge without labels would be exported (as 0) by every process, saying what it
                # does not know: made only when this process sets it, so only its owner exports it.
                self._deferred[spec.name] = spec
                continue
            self._metrics[spec.name] = self._make(spec)

    def _make(self, spec: Spec) -> "_Metric":
        registry = self._registry
        full_name = f"exsync_{spec.name}"
        metric: _Metric
        if spec.kind == "counter":
            metric = prometheus_client.Counter(full_name, spec.documentation, spec.labels, registry=registry)
        elif spec.kind == "histogram":
            metric = prometheus_client.Histogram(
                full_name, spec.documentation, spec.labels, buckets=spec.buckets, registry=registry
            )
        elif spec.kind == "gauge":
            metric = prometheus_client.Gauge(
                full_name, spec.documentation, spec.labels, registry=registry, multiprocess_mode="livemax"
            )
        else:
            raise ValueError(f"unknown metric kind {spec.kind!r} for {spec.name}")
        return metric

    def _metric(self, name: str) -> "_Metric":
        metric = self._metrics.get(name)
        if metric is None:
            with self._lock:
                metric = self._metrics.get(name)
                if metric is None:
                    metric = self._metrics[name] = self._make(self._deferred[name])
        return metric

    # Any: a labelled child or the metric itself, whichever kind the name's spec made.
    def _child(self, name: str, labels: dict[str, str]) -> Any:
        key = (name, *labels.items())
        child = self._children.get(key)
        if child is None:
            # Label values are bounded (never an id), so this holds one entry per series.
            metric = self._metric(name)
            child = self._children[key] = metric.labels(**labels) if labels else metric
        return child

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        self._child(name, labels).inc(amount)

    def observe(self, name: str, value: float, **labels: str) -> None:
        self._child(name, labels).observe(value)

    def set(self, name: str, value: float, **labels: str) -> None:
        self._child(name, labels).set(value)

    def track(self, name: str, read: Callable[[], float]) -> None:
        # For a count that lives in a database: read at scrape time, so it is never stale and one
        # process (the count's owner) exports it. Not for gunicorn's multiprocess mode.
        metric = self._metric(name)
        if not isinstance(metric, prometheus_client.Gauge):
            raise ValueError(f"{name} is a {type(metric).__name__}: only a gauge is read at scrape time")
        metric.set_function(read)


_default: "PrometheusMetrics | None" = None


def build_labels(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The version and commit exsync_build_info carries."""
    environ = os.environ if environ is None else environ
    return {"version": __version__, "commit": environ.get("EXSYNC_COMMIT") or "unknown"}


def default_metrics() -> PrometheusMetrics:
    """The process's PrometheusMetrics, made once (prometheus_client allows one per name)."""
    global _default
    if _default is None:
        _default = PrometheusMetrics()
        _default.set("build_info", 1, **build_labels())
    return _default
