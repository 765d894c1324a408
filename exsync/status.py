"""`exsync status`: one screen for an operator, and the same as JSON for scripts.

Queue depths and consumers come from a passive `queue.declare` per queue (what AMQP itself
answers, so it works where RabbitMQ's management API is not enabled); the rest from exsync's state
tables and the shop's webhook list. Each part that cannot be read says why, and counts as
something a person must look at.
"""

import dataclasses
import time

import pika.exceptions

from exsync.bus import INVALID_QUEUE, Topology, dead_queue_name, open_connection, retry_queue_name, unrouted_name
from exsync.errors import ExsyncError

__all__ = ["QueueState", "JobState", "StatusReport", "collect_status", "render_status",
           "DEFAULT_STALE_SECONDS", "DEFAULT_PARKED_ORDERS_SHOWN"]

# How long since its last success before a job needs a person (the alerts' thresholds).
DEFAULT_STALE_SECONDS = {"capture": 600.0, "reconcile": 1800.0, "stock_audit": 2 * 86400.0}
DEFAULT_PARKED_ORDERS_SHOWN = 20


@dataclasses.dataclass(kw_only=True)
class QueueState:
    name: str
    ready: int | None
    consumers: int | None
    retrying: int = 0
    dead: int | None = None


@dataclasses.dataclass(kw_only=True)
class JobState:
    job: str
    last_run_at: float | None = None
    last_success_at: float | None = None
    age_seconds: float | None = None
    outcome: str | None = None
    detail: str = ""


@dataclasses.dataclass(kw_only=True)
class StatusReport:
    queues: list = dataclasses.field(default_factory=list)
    invalid: int | None = None
    unrouted: dict = dataclasses.field(default_factory=dict)
    parked_orders: list = dataclasses.field(default_factory=list)
    parked_orders_total: int | None = None
    conflicts_waiting: int | None = None
    jobs: list = dataclasses.field(default_factory=list)
    webhooks: list | None = None
    errors: dict = dataclasses.field(default_factory=dict)
    needs_attention: list = dataclasses.field(default_factory=list)

    def as_dict(self):
        return dataclasses.asdict(self)


def _depths(url, names):
    """queue -> (ready messages, consumers), None for a queue that does not exist."""
    found = {}
    with open_connection(url) as connection, connection.translated_errors():
        channel = connection.pika.channel()
        for name in names:
            try:
                method = channel.queue_declare(name, passive=True).method
                found[name] = (method.message_count, method.consumer_count)
            except pika.exceptions.ChannelClosedByBroker:
                # 404: the topology is not declared; the broker closed the channel with it.
                found[name] = None
                channel = connection.pika.channel()
    return found


def _queues(report, url, topology):
    names = topology.all_queue_names()
    depths = _depths(url, names)
    for spec in topology.queues:
        ready, consumers = depths.get(spec.name) or (None, None)
        retrying = sum((depths.get(retry_queue_name(spec.name, d)) or (0, 0))[0] for d in topology.retry_delays_seconds)
        dead = (depths.get(dead_queue_name(spec.name)) or (None, None))[0]
        report.queues.append(QueueState(name=spec.name, ready=ready, consumers=consumers, retrying=retrying,
                                        dead=dead))
    report.invalid = (depths.get(INVALID_QUEUE) or (None, None))[0]
    report.unrouted = {unrouted_name(e): (depths.get(unrouted_name(e)) or (None, None))[0] for e in topology.exchanges}


def _state(report, settings, now, parked_shown):
    from exsync.exchequer import connect, mapping_for
    from exsync.exchequer.runs import CAPTURE, RECONCILE, STOCK_AUDIT, RunLog
    from exsync.state.links import LinkStore
    from exsync.state.orders import OrderStore, ensure_order_tables

    with connect(settings.state_dsn, mapping=mapping_for(settings.config)) as database:
        ensure_order_tables(database)
        orders = OrderStore(database=database)
        report.parked_orders_total = orders.counts().get("parked", 0)
        report.parked_orders = [{"order_id": row.order_id, "number": row.number, "status": row.status,
                                 "reason": row.reason} for row in orders.parked(parked_shown)]
        report.conflicts_waiting = LinkStore(database=database).waiting()
        runs = RunLog(database=database).ensure().all()
    for job in (CAPTURE, RECONCILE, STOCK_AUDIT):
        run = runs.get(job)
        if run is None:
            report.jobs.append(JobState(job=job))
            continue
        age = None if run.last_success_at is None else max(0.0, now - run.last_success_at)
        report.jobs.append(JobState(job=job, last_run_at=run.last_run_at, last_success_at=run.last_success_at,
                                    age_seconds=age, outcome=run.outcome, detail=run.detail))


def _webhooks(report, settings):
    from exsync.woo import WooClient

    if not settings.woo_url:
        return  # no shop configured: nothing to list, nothing wrong
    prefix = settings.config["shop"]["webhooks"]["name_prefix"]
    with WooClient.from_settings(settings) as client:
        report.webhooks = [{"id": w["id"], "name": w.get("name", ""), "topic": w.get("topic", ""),
                            "status": w.get("status", ""), "delivery_url": w.get("delivery_url", "")}
                           for w in client.iter_webhooks() if str(w.get("name", "")).startswith(prefix)]


def _attention(report, stale_seconds):
    found = report.needs_attention
    for where, error in report.errors.items():
        found.append(f"{where}: cannot be read ({error})")
    for queue in report.queues:
        if queue.dead:
            found.append(f"{queue.dead} message(s) parked on {dead_queue_name(queue.name)}")
        if queue.ready is None:
            found.append(f"queue {queue.name} does not exist: run `exsync topology`")
        elif queue.ready and not queue.consumers:
            found.append(f"{queue.ready} message(s) on {queue.name} and no consumer")
    if report.invalid:
        found.append(f"{report.invalid} delivery(ies) on {INVALID_QUEUE} failed validation")
    if report.parked_orders_total:
        found.append(f"{report.parked_orders_total} order(s) parked")
    if report.conflicts_waiting:
        found.append(f"{report.conflicts_waiting} customer conflict(s) wait for a person")
    for job in report.jobs:
        limit = stale_seconds.get(job.job)
        if job.last_run_at is None or limit is None:
            continue  # never ran here: not deployed, or not yet
        if job.age_seconds is None or job.age_seconds > limit:
            found.append(f"{job.job} has not succeeded for {_age(job.age_seconds)} (last: {job.outcome} "
                         f"{job.detail})".rstrip())
    for webhook in report.webhooks or ():
        if webhook["status"] != "active":
            found.append(f"webhook {webhook['id']} ({webhook['topic']}) is {webhook['status']}")


def collect_status(settings, *, topology=None, now=None, stale_seconds=None,
                   parked_shown=DEFAULT_PARKED_ORDERS_SHOWN):
    """Everything `exsync status` shows; never raises for a part it cannot read."""
    topology = topology or Topology.from_config(settings.config)
    now = time.time() if now is None else now
    report = StatusReport()
    for where, read in (("broker", lambda: _queues(report, settings.amqp_url, topology)),
                        ("state database", lambda: _state(report, settings, now, parked_shown)),
                        ("shop", lambda: _webhooks(report, settings))):
        try:
            read()
        except ExsyncError as error:
            report.errors[where] = str(error)
    _attention(report, {**DEFAULT_STALE_SECONDS, **(stale_seconds or {})})
    return report


def _age(seconds):
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _count(value):
    return "?" if value is None else str(value)


def render_status(report):
    """The report as text for a terminal."""
    lines = [f"{'queue':<20} {'ready':>7} {'consumers':>9} {'retrying':>8} {'dead':>6}"]
    for queue in report.queues:
        lines.append(f"{queue.name:<20} {_count(queue.ready):>7} {_count(queue.consumers):>9} "
                     f"{queue.retrying:>8} {_count(queue.dead):>6}")
    if report.queues:
        lines.append(f"{INVALID_QUEUE:<20} {_count(report.invalid):>7}   (failed validation)")
        for name, depth in report.unrouted.items():
            lines.append(f"{name:<20} {_count(depth):>7}   (no consumer yet, by design)")
    lines.append("")
    if report.parked_orders_total is not None:
        lines.append(f"parked orders: {report.parked_orders_total}")
        for order in report.parked_orders:
            lines.append(f"  order {order['order_id']} (#{order['number']}, {order['status']}): {order['reason']}")
        lines.append(f"customer conflicts waiting: {report.conflicts_waiting}")
        lines.append("")
    for job in report.jobs:
        if job.last_run_at is None:
            lines.append(f"{job.job:<12} never ran")
            continue
        lines.append(f"{job.job:<12} last success {_age(job.age_seconds)} ago; last run {job.outcome}"
                     + (f": {job.detail}" if job.detail and job.outcome != "ok" else ""))
    if report.webhooks is not None:
        lines.append("")
        lines.append(f"shop webhooks: {len(report.webhooks)}")
        for webhook in report.webhooks:
            lines.append(f"  {webhook['id']:>6} {webhook['topic']:<18} {webhook['status']}")
    lines.append("")
    if report.needs_attention:
        lines.append("needs a person:")
        lines.extend(f"  - {item}" for item in report.needs_attention)
    else:
        lines.append("all clear")
    return "\n".join(lines)
