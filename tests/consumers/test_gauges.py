import math

import prometheus_client

from exsync.consumers.gauges import StateReading, track_state_gauges
from exsync.exchequer import connect
from exsync.exchequer.mapping import Mapping
from exsync.metrics import PrometheusMetrics
from exsync.state.orders import OrderStore, ensure_order_tables


def test_a_state_gauge_is_read_at_each_scrape_and_survives_the_database_going_away(tmp_path):
    dsn = f"sqlite:///{tmp_path / 'state.db'}"
    mapping = Mapping()
    with connect(dsn, mapping=mapping) as database:
        ensure_order_tables(database)
    registry = prometheus_client.CollectorRegistry()
    [reading] = track_state_gauges(PrometheusMetrics(registry=registry), dsn=dsn, mapping=mapping, gauges={
        "orders_parked": lambda database: OrderStore(database=database).counts().get("parked", 0)})
    assert registry.get_sample_value("exsync_orders_parked") == 0

    with connect(dsn, mapping=mapping) as database:
        store = OrderStore(database=database)
        store.record_version({"id": 7, "number": "7", "status": "processing", "date_modified_gmt": "2026-01-01T00:00:00",
                              "total": "1.00", "currency": "GBP"})
        store.mark(7, "parked", "unknown SKU X")
    assert registry.get_sample_value("exsync_orders_parked") == 1  # no tick: the next scrape sees it

    reading._database.raw.close()  # the connection died under the reading
    assert math.isnan(registry.get_sample_value("exsync_orders_parked"))
    assert registry.get_sample_value("exsync_orders_parked") == 1  # and the next scrape connects again


def test_a_reading_the_database_cannot_answer_is_nan_not_a_failed_scrape(tmp_path):
    # No order tracking table in this database: the query fails, the scrape does not.
    reading = StateReading(dsn=f"sqlite:///{tmp_path / 'empty.db'}", mapping=Mapping(),
                           read=lambda database: OrderStore(database=database).counts().get("parked", 0))
    assert math.isnan(reading())
