"""The woo-writer's batches in flight, against the sandbox over real HTTP with a pool of PHP workers:
the cap, never two batches in flight for one SKU, the newest value winning, and the limit halving
on 429, 503 and timeouts and growing back after clean batches."""

import contextlib
import threading

import pytest

from exsync.consumers.woo_batches import AdaptiveConcurrency, Batch, BatchPipeline, Outcome
from exsync.consumers.woo_writer import WooWriter
from exsync.exchequer import connect
from exsync.sandbox import Faults, SandboxServer, SandboxShop
from exsync.woo import WooClient

ITEM_LATENCY_SECONDS = 0.005


class RecordingClient(WooClient):
    """A real client that notes which SKUs each products batch carries while it is in flight."""

    def __init__(self, **options):
        super().__init__(**options)
        self._lock = threading.Lock()
        self.in_flight = []  # the SKU sets of the batches in flight now
        self.peak_in_flight = 0
        self.overlaps = []  # SKUs that were in two batches in flight at once
        self.sent = []  # every batch's SKUs, in the order sent

    def batch_products(self, *, create=(), update=(), delete=()):
        skus = frozenset(item.get("sku") or item.get("id") for item in (*create, *update))
        with self._lock:
            for other in self.in_flight:
                self.overlaps.extend(skus & other)
            self.in_flight.append(skus)
            self.sent.append(skus)
            self.peak_in_flight = max(self.peak_in_flight, len(self.in_flight))
        try:
            return super().batch_products(create=create, update=update, delete=delete)
        finally:
            with self._lock:
                self.in_flight.remove(skus)


@contextlib.contextmanager
def shop_with_workers(tmp_path, *, workers, timeout_seconds=30.0, **writer_options):
    shop = SandboxShop(faults=Faults(item_latency_seconds=ITEM_LATENCY_SECONDS))
    credentials = shop.add_credentials()
    with SandboxServer(shop=shop, workers=workers) as server:
        client = RecordingClient(url=server.url, consumer_key=credentials.consumer_key,
                                 consumer_secret=credentials.consumer_secret, requests_per_second=1000,
                                 max_attempts=3, backoff_initial_seconds=0.01, timeout_seconds=timeout_seconds)
        with connect(f"sqlite:///{tmp_path}/state.db") as database:
            writer = WooWriter(database=database, client=client, item_retry_seconds=0, **writer_options)
            yield shop, server, client, writer


def stock(skus, sequence, quantity):
    return [{"sku": sku, "quantity": quantity, "sequence": sequence} for sku in skus]


def skus(count, prefix="C"):
    return [f"{prefix}-{n:04d}" for n in range(count)]


def shop_stock(shop):
    return {p["sku"]: shop.product_json(p)["stock_quantity"] for p in shop.products.values()}


def test_several_batches_are_in_flight_and_never_more_than_the_setting(tmp_path):
    with shop_with_workers(tmp_path, workers=4, max_concurrent_requests=3) as (shop, server, client, writer):
        writer.accept(stock=stock(skus(1000), 1, 5))
        report = writer.flush()
        assert (report.created, report.requests, report.failed) == (1000, 10, 0)
        assert client.peak_in_flight == 3 and server.workers.peak_busy == 3
        assert all(len(batch) <= 100 for batch in client.sent)
        assert shop_stock(shop) == dict.fromkeys(skus(1000), 5)
        assert writer.pending_count() == 0


def test_the_default_keeps_two_in_flight(tmp_path):
    with shop_with_workers(tmp_path, workers=4) as (_, server, client, writer):
        writer.accept(stock=stock(skus(600), 1, 5))
        assert writer.flush().created == 600
        assert writer.concurrency.maximum == 2 and client.peak_in_flight == 2


def test_never_two_batches_in_flight_for_one_sku_and_the_newest_value_wins(tmp_path):
    with shop_with_workers(tmp_path, workers=4, max_concurrent_requests=4) as (shop, _, client, writer):
        names = skus(800)
        writer.accept(stock=stock(names, 1, 1))
        newer = []

        def progress(done, total):
            # Runs between answers while other batches are in flight: newer values arrive for every SKU,
            # those in flight included; only the version written is cleared, the newer stays pending.
            if not newer:
                newer.append(writer.accept(stock=stock(names, 2, 2)))

        first = writer.flush(progress=progress)
        assert first.created == 800 and newer == [(800, 0)]
        assert writer.pending_count() == 800  # every SKU's newer value, the ones in flight included
        assert writer.flush().updated == 800
        assert client.overlaps == [] and client.peak_in_flight == 4
        assert shop_stock(shop) == dict.fromkeys(names, 2)
        assert writer.pending_count() == 0
        # An older value coming late changes nothing.
        assert writer.accept(stock=stock(names, 1, 1)) == (0, 800)


def test_a_batch_holding_a_sku_in_flight_waits_for_it(tmp_path):
    """The pipeline's own guard: batches sharing a SKU are never in flight together, and go in order."""
    with shop_with_workers(tmp_path, workers=4, max_concurrent_requests=4) as (shop, _, client, writer):
        writer.accept(stock=stock(["A", "B", "C", "D"], 1, 0))
        writer.flush()
        ids = {p["sku"]: p["id"] for p in shop.products.values()}

        def batch(values):
            return Batch(skus=frozenset(values), work=[{"id": ids[sku], "sku": sku, "stock_quantity": quantity,
                                                        "manage_stock": True} for sku, quantity in values.items()])

        settled = []
        pipeline = BatchPipeline(concurrency=AdaptiveConcurrency(maximum=4),
                                 send=lambda b: client.batch_products(update=b.work),
                                 settle=lambda b, result: settled.append(sorted(b.skus)) or Outcome())
        pipeline.run([batch({"A": 1, "B": 1}), batch({"C": 1}), batch({"A": 2, "D": 2}), batch({"A": 3})])
        assert client.overlaps == []
        assert [sorted(s) for s in client.sent[-4:]] == [["A", "B"], ["C"], ["A", "D"], ["A"]]
        assert sorted(map(tuple, settled)) == [("A",), ("A", "B"), ("A", "D"), ("C",)]
        assert shop_stock(shop) == {"A": 3, "B": 1, "C": 1, "D": 2}


@pytest.mark.parametrize("status", [429, 503])
def test_a_429_or_503_halves_the_limit_and_clean_batches_grow_it_back(tmp_path, status):
    with shop_with_workers(tmp_path, workers=4, max_concurrent_requests=4) as (shop, _, client, writer):
        shop.faults.inject(status=status, retry_after_seconds=1, count=1, method="POST", route_prefix="products/batch")
        writer.accept(stock=stock(skus(1500), 1, 5))
        report = writer.flush()
        assert report.created == 1500 and writer.pending_count() == 0
        assert writer.concurrency.halvings == 1  # several batches met the one answer's pause: halved once
        assert writer.concurrency.growths >= 1  # clean batches after it grew it again
        assert writer.concurrency.limit <= 4 and client.peak_in_flight <= 4


def test_a_timeout_halves_the_limit(tmp_path):
    with shop_with_workers(tmp_path, workers=4, max_concurrent_requests=4, timeout_seconds=3.0) as (
            shop, _, _, writer):
        names = skus(400)
        writer.accept(stock=stock(names, 1, 5))
        writer.flush()
        # Updates may be sent again after a timeout (idempotent); one stalls past the client's timeout.
        shop.faults.inject(delay_seconds=4.0, count=1, method="POST", route_prefix="products/batch")
        writer.accept(stock=stock(names, 2, 6))
        assert writer.flush().updated == 400
        assert writer.concurrency.halvings == 1 and writer.concurrency.limit == 2
        assert shop_stock(shop) == dict.fromkeys(names, 6)


def test_the_limit_halves_once_per_pressure_and_never_grows_above_the_setting():
    concurrency = AdaptiveConcurrency(maximum=4, clean_batches_to_grow=2)
    tickets = [concurrency.ticket() for _ in range(3)]  # three batches in flight
    assert [concurrency.pressure(ticket) for ticket in tickets] == [True, False, False]
    assert concurrency.limit == 2
    assert concurrency.pressure(concurrency.ticket()) and concurrency.limit == 1
    assert concurrency.pressure(concurrency.ticket()) and concurrency.limit == 1  # never below one
    assert not concurrency.clean(tickets[0])  # sent before the halvings: says nothing about now
    grown = [concurrency.clean(concurrency.ticket()) for _ in range(10)]
    assert grown.count(True) == 3 and concurrency.limit == 4
    with pytest.raises(ValueError):
        AdaptiveConcurrency(maximum=0)
