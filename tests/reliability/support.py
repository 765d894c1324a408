"""The fault scenarios' pieces: exsync's real processes over a company on PostgreSQL, signed deliveries
sent as WooCommerce sends them, and the checks that count what came out in Exchequer.

The processes are started as `make demo` starts them (`exsync.demo.exsync_process`): the receiver
under gunicorn, the consumers, the capture, each its own process, so `kill -9` is a real crash.
"""

import collections
import concurrent.futures
import contextlib
import dataclasses
import decimal
import os
import random
import threading
import time

import requests

from exsync import wiring
from exsync.bus import declare_topology
from exsync.bus.connection import node_urls
from exsync.config import child_environment
from exsync.demo import exsync_process
from exsync.exchequer import connect
from exsync.exchequer.mapping import DOC_TYPES
from exsync.exchequer.writer import KIND_SALES_DOCUMENT
from tests.consumers.conftest import order_body
from tests.support.net import free_port, wait_for_port
from tests.support.rabbit import queue_depth, read_messages
from tests.support.waiting import wait_until
from tests.support.woo import delivery_headers, woo_json

__all__ = ["SECRET", "Pipeline", "Stage", "stage", "Delivery", "deliver_all", "make_order", "lifecycle", "DocumentCount",
           "count_documents", "wait_for_documents", "announcements", "record_figures", "with_port"]

SECRET = "chaos-webhook-secret"
WEBHOOK_PATH = "/webhooks/woocommerce"
DELIVERY_TIMEOUT_SECONDS = 30.0
CENT = decimal.Decimal("0.01")


def with_port(odbc_dsn, port):
    """The ODBC connection string with another port (a proxy's in front of the server)."""
    parts = [part for part in odbc_dsn.split(";") if part and not part.lower().startswith("port=")]
    return ";".join(parts + [f"Port={port}"]) + ";"


class Pipeline:
    """exsync's own processes for one scenario, as production runs them; all stopped when it ends.

    `amqp_url` and `exchequer_dsn` are what the processes are given (a proxy's address when the
    scenario cuts a service); each process can be given its own with `start(..., amqp_url=...)`.
    """

    def __init__(self, *, directory, amqp_url, exchequer_dsn, config_text=None, **extra_env):
        self.directory = str(directory)
        os.makedirs(self.directory, exist_ok=True)
        self.amqp_url = amqp_url
        self.exchequer_dsn = exchequer_dsn
        self.extra_env = extra_env
        self.config_path = None
        if config_text:
            self.config_path = os.path.join(self.directory, "exsync.yaml")
            with open(self.config_path, "w", encoding="utf-8") as handle:
                handle.write(config_text)
        self._stack = contextlib.ExitStack()
        self.processes = {}
        self._starts = collections.Counter()
        self.receiver_url = None

    def env(self, **overrides):
        values = dict(EXSYNC_AMQP_URL=self.amqp_url, EXSYNC_WEBHOOK_SECRETS=SECRET,
                      EXSYNC_EXCHEQUER_DSN=self.exchequer_dsn, EXSYNC_STATE_DSN=self.exchequer_dsn,
                      EXSYNC_LOG_LEVEL="INFO", **self.extra_env)
        if self.config_path:
            values["EXSYNC_CONFIG"] = self.config_path
        values.update({key: value for key, value in overrides.items() if value is not None})
        env = child_environment(**values)
        if not self.config_path:
            env.pop("EXSYNC_CONFIG", None)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        return env

    def start(self, name, args, **env):
        """`exsync ARGS` as the process `name`; its log is <directory>/<name>-<n>.log."""
        self._starts[name] += 1
        log_path = os.path.join(self.directory, f"{name}-{self._starts[name]}.log")
        process = self._stack.enter_context(exsync_process(list(args), env=self.env(**env), log_path=log_path))
        self.processes[name] = process
        return process

    def start_receiver(self, *, amqp_url=None, workers=2, connections=16):
        port = free_port()
        self.start("webhook", ["webhook"], EXSYNC_AMQP_URL=amqp_url, EXSYNC_BIND=f"127.0.0.1:{port}",
                   EXSYNC_WEBHOOK_WORKERS=str(workers), EXSYNC_WEBHOOK_CONNECTIONS=str(connections),
                   PROMETHEUS_MULTIPROC_DIR=os.path.join(self.directory, "metrics"))
        wait_for_port("127.0.0.1", port, timeout_seconds=60)
        self.receiver_url = f"http://127.0.0.1:{port}"
        # Ready in a row a few times: each worker has connected to the broker before the scenario starts.
        ready = wait_until(lambda: all(requests.get(self.receiver_url + "/readyz", timeout=10).status_code == 200
                                       for _ in range(2 * workers)), timeout_seconds=60, interval_seconds=0.2)
        if not ready:
            raise RuntimeError(f"the receiver did not become ready; see {self.directory}/webhook-*.log")
        return self.receiver_url

    def start_consumer(self, name="orders", **env):
        """`exsync consume NAME`, returned once it consumes (its log says so)."""
        process = self.start(name, ["consume", name], **env)
        log_path = os.path.join(self.directory, f"{name}-{self._starts[name]}.log")

        def consuming():
            with open(log_path, encoding="utf-8", errors="replace") as handle:
                return " consuming (" in handle.read()

        if not wait_until(consuming, timeout_seconds=60, interval_seconds=0.1):
            raise RuntimeError(f"{name} did not start consuming; see {log_path}")
        return process

    def kill(self, name):
        """`kill -9` of the process `name`: no shutdown, no acks, connections dropped by the kernel."""
        process = self.processes[name]
        process.kill()
        process.wait(timeout=30)

    def log_text(self, name):
        """Every log of the process `name` (each start's), for a failure's message."""
        texts = []
        for number in range(1, self._starts[name] + 1):
            with open(os.path.join(self.directory, f"{name}-{number}.log"), encoding="utf-8",
                      errors="replace") as handle:
                texts.append(handle.read())
        return "\n".join(texts)

    def close(self):
        self._stack.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@dataclasses.dataclass
class Stage:
    """A running pipeline for the scenarios: the receiver, the orders consumer, their company."""

    pipeline: Pipeline
    amqp_url: str  # the broker, direct (for the test's own checks): a cluster's last node
    dsn: str  # the company, direct
    codes: list
    base_url: str
    broker_proxy: object = None
    database_proxy: object = None


@contextlib.contextmanager
def stage(*, amqp_url, dsn, directory, broker_proxy=False, database_proxy=False, database_password=None):
    """A seeded company on `dsn`, exsync's topology, and the receiver and the orders consumer as
    processes (`amqp_url` may name a cluster's nodes); with `broker_proxy` the receiver reaches RabbitMQ through a TcpProxy, with
    `database_proxy` the consumer reaches PostgreSQL through one. `database_password` goes in the
    processes' connection string (the tests' server trusts local connections and ignores it), so a
    scenario can look for it in the logs."""
    from tests.consumers.conftest import company
    from tests.support.proxy import TcpProxy, proxy_in_front_of

    codes = company(dsn)[:4]
    declare_topology(amqp_url, wiring.topology())
    broker, receiver_amqp_url = proxy_in_front_of(amqp_url) if broker_proxy else (None, amqp_url)
    database = TcpProxy(target_host="127.0.0.1", target_port=5432).start() if database_proxy else None
    processes_dsn = with_port(dsn, database.port) if database else dsn
    if database_password is not None:
        # ODBC brace quoting: a closing brace inside the value is doubled.
        processes_dsn += "Pwd={" + database_password.replace("}", "}}") + "};"
    try:
        with Pipeline(directory=directory, amqp_url=amqp_url, exchequer_dsn=processes_dsn) as pipeline:
            base_url = pipeline.start_receiver(amqp_url=receiver_amqp_url)
            pipeline.start_consumer("orders")
            yield Stage(pipeline=pipeline, amqp_url=node_urls(amqp_url)[-1], dsn=dsn, codes=codes, base_url=base_url,
                        broker_proxy=broker, database_proxy=database)
    finally:
        for proxy in (broker, database):
            if proxy is not None:
                proxy.resume()
                proxy.cut()


# --- orders and deliveries


def make_order(order_id, codes, rng, *, status="processing", modified="2026-11-27T10:00:00", date_paid=True):
    """A guest order of 1-3 lines over `codes`, with carriage, its total as WooCommerce computes it."""
    lines = []
    for sku in rng.sample(list(codes), rng.randint(1, min(3, len(codes)))):
        qty = rng.randint(1, 3)
        net = (decimal.Decimal(rng.randint(150, 9999)) / 100 * qty).quantize(CENT)
        tax = (net * decimal.Decimal("0.2")).quantize(CENT)
        lines.append((sku, qty, str(net), str(net), str(tax)))
    body = order_body(order_id, lines=lines, status=status, modified=modified)
    if date_paid and status in ("processing", "completed"):
        body["date_paid_gmt"] = modified
    return body


def lifecycle(order_id, codes, rng, *, states=("pending", "processing", "completed")):
    """One order's bodies through its states, each a few seconds newer than the one before."""
    first = make_order(order_id, codes, rng, status=states[0])
    bodies = []
    for step, state in enumerate(states):
        body = {**first, "status": state, "date_modified_gmt": f"2026-11-27T10:00:{step * 5:02d}"}
        body.pop("date_paid_gmt", None)
        if state in ("processing", "completed"):
            body["date_paid_gmt"] = "2026-11-27T10:00:05"
        bodies.append(body)
    return bodies


@dataclasses.dataclass
class Delivery:
    """One POST as WooCommerce makes it, and what the receiver answered."""

    order_id: int
    body: bytes
    topic: str
    sent_at: float = 0.0
    answered_at: float = 0.0
    status: int | None = None  # None: no answer (a timeout or a refused connection)

    @classmethod
    def of(cls, order, topic="order.updated"):
        return cls(order_id=int(order["id"]), body=woo_json(order), topic=topic)


_sessions = threading.local()


def post(base_url, delivery, *, timeout_seconds=DELIVERY_TIMEOUT_SECONDS):
    """Sends one delivery on this thread's keep-alive session; records when and what came back."""
    session = getattr(_sessions, "session", None)
    if session is None:
        session = _sessions.session = requests.Session()
    headers = delivery_headers(delivery.body, secret=SECRET, topic=delivery.topic)
    delivery.sent_at = time.monotonic()
    try:
        delivery.status = session.post(base_url + WEBHOOK_PATH, data=delivery.body, headers=headers,
                                       timeout=timeout_seconds).status_code
    except requests.RequestException:
        delivery.status = None
        _sessions.session = None
    delivery.answered_at = time.monotonic()
    return delivery


def deliver_all(base_url, deliveries, *, concurrency=16, per_second=None, send=None):
    """Sends every delivery, `concurrency` at once; with `per_second`, paced at that rate (each on
    its own thread, so a delivery that hangs does not slow the next). `send(post, base_url, item)`
    sends one item when the items are not single deliveries (a sequence sent in turn, say)."""
    send = send or (lambda post_one, url, delivery: post_one(url, delivery))
    with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
        if per_second is None:
            return list(pool.map(lambda item: send(post, base_url, item), deliveries))
        started = time.monotonic()
        futures = []
        for n, delivery in enumerate(deliveries):
            pause = started + n / per_second - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            futures.append(pool.submit(send, post, base_url, delivery))
        return [future.result() for future in futures]


def shuffled(items, seed):
    items = list(items)
    random.Random(seed).shuffle(items)
    return items


# --- what came out


@dataclasses.dataclass
class DocumentCount:
    """Orders against the sales documents in Exchequer, by external key."""

    expected: int
    imported: int
    missing: list
    extra: int
    wrong_total: list

    @property
    def wrong(self):
        """Documents that are not exactly one per order with the order's total."""
        return len(self.missing) + self.extra + len(self.wrong_total)


def count_documents(dsn, totals):
    """Compares Exchequer with `totals` (order id -> the order's total): each order must have its
    documents (a sales order, or a quotation, or both when split) summing to its total, and no
    document may exist twice or without the key of the order it was made for."""
    with connect(dsn) as database, database.transaction(write=False) as cursor:
        keys = cursor.run("SELECT {external_keys.external_key}, {external_keys.reference} FROM {external_keys} "
                          "WHERE {external_keys.kind} = ?", (KIND_SALES_DOCUMENT,)).fetchall()
        # The seed's open orders (your ref BACKLOG...) carry its allocations; they are not the shop's.
        documents = cursor.run("SELECT {documents.our_ref}, {documents.net_value}, {documents.total_vat} "
                               "FROM {documents} WHERE {documents.doc_type} IN (?, ?) "
                               "AND {documents.your_ref} NOT LIKE 'BACKLOG%'",
                               (DOC_TYPES["SOR"], DOC_TYPES["SQU"])).fetchall()
    values = {ref: decimal.Decimal(str(net or 0)) + decimal.Decimal(str(vat or 0)) for ref, net, vat in documents}
    by_order = collections.defaultdict(list)
    for key, reference in keys:
        if reference and key.startswith("woo-order:"):
            by_order[int(key.split(":")[1])].append(reference)
    keyed = {reference for references in by_order.values() for reference in references}
    # A document twice under one reference, or one no key points at, is a document too many.
    extra = (len(documents) - len(values)) + len(set(values) - keyed)
    missing, wrong_total = [], []
    for order_id, total in totals.items():
        references = [ref for ref in by_order.get(order_id, ()) if ref in values]
        if not references:
            missing.append(order_id)
            continue
        made = sum(values[ref] for ref in references).quantize(CENT)
        if made != decimal.Decimal(str(total)).quantize(CENT):
            wrong_total.append((order_id, str(total), str(made)))
    return DocumentCount(expected=len(totals), imported=len(totals) - len(missing), missing=sorted(missing),
                         extra=extra, wrong_total=wrong_total)


def pending_messages(amqp_url, queue="orders.import"):
    """Messages still on `queue` and its retry queues (not its dead-letter queue)."""
    names = [name for name in wiring.topology().all_queue_names() if name == queue or name.startswith(queue + ".retry.")]
    return sum(queue_depth(amqp_url, name) for name in names)


def wait_for_documents(dsn, totals, *, amqp_url, timeout_seconds, quiet_seconds=10.0):
    """Waits until every order has its documents, or until nothing is left to handle and nothing
    has changed for `quiet_seconds` (what is missing then will not come), or the timeout.

    Returns (DocumentCount, seconds waited).
    """
    started = time.monotonic()
    deadline = started + timeout_seconds
    last, last_change = None, time.monotonic()
    while True:
        count = count_documents(dsn, totals)
        now = time.monotonic()
        if count.imported == count.expected and pending_messages(amqp_url) == 0:
            return count, now - started
        signature = (count.imported, count.extra)
        if signature != last:
            last, last_change = signature, now
        elif now - last_change >= quiet_seconds and pending_messages(amqp_url) == 0:
            return count, now - started
        if now >= deadline:
            return count, now - started
        time.sleep(0.5)


def announcements(amqp_url, probe):
    """The `exchequer.order.imported` events on the probe: how many, and the orders announced
    under more than one event id (repeats a consumer cannot recognise as the same event)."""
    events = read_messages(amqp_url, probe, timeout_seconds=3)
    ids = collections.defaultdict(set)
    for event, _ in events:
        ids[int(event["data"]["woo_order_id"])].add(event["id"])
    return {"announcements": len(events), "orders_announced": len(ids),
            "orders_announced_under_several_ids": sum(1 for found in ids.values() if len(found) > 1)}


def record_figures(figures, *, conditions):
    """Writes each (key, value, unit, goal) to bench/results.json with the scenario's conditions."""
    from bench.results import record

    for key, value, unit, goal in figures:
        record(key, value=value, unit=unit, goal=goal, conditions={"harness": "tests/reliability (make chaos)",
                                                                   **conditions})
