import prometheus_client
import pytest

from exsync.metrics import SPECS, Metrics, PrometheusMetrics, Spec

# Names that would make a series per order, customer or item: never labels.
ID_LIKE = {"id", "order", "order_id", "customer", "customer_id", "sku", "account", "account_code", "message_id"}


def sample(registry, name, **labels):
    return registry.get_sample_value(name, labels)


def test_every_spec_follows_the_naming_rules():
    names = [spec.name for spec in SPECS]
    assert len(names) == len(set(names))
    for spec in SPECS:
        assert not spec.name.startswith("exsync_"), "the prefix is added once, by PrometheusMetrics"
        assert spec.kind in {"counter", "histogram", "gauge"}
        assert not spec.name.endswith("_total"), "prometheus_client adds _total to counters"
        assert not ID_LIKE & set(spec.labels), f"{spec.name} has an id as a label"
        if spec.kind == "histogram":
            assert spec.name.endswith(("_seconds", "_items")), f"{spec.name}: a histogram names its unit"


def test_counters_histograms_and_gauges_record_per_label_set():
    registry = prometheus_client.CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry)
    for _ in range(3):
        metrics.inc("webhook_requests", topic="order.created", outcome="accepted")
    metrics.inc("webhook_requests", topic="order.created", outcome="parked")
    metrics.inc("webhook_requests", 2, outcome="accepted", topic="order.created")  # labels in another order
    metrics.observe("webhook_request_duration_seconds", 0.004, outcome="accepted")
    metrics.observe("webhook_request_duration_seconds", 0.2, outcome="accepted")
    metrics.set("orders_parked", 7)
    metrics.set("orders_parked", 4)

    assert sample(registry, "exsync_webhook_requests_total", topic="order.created", outcome="accepted") == 5
    assert sample(registry, "exsync_webhook_requests_total", topic="order.created", outcome="parked") == 1
    assert sample(registry, "exsync_webhook_request_duration_seconds_count", outcome="accepted") == 2
    assert sample(registry, "exsync_webhook_request_duration_seconds_bucket", outcome="accepted", le="0.005") == 1
    assert sample(registry, "exsync_orders_parked") == 4


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown metric kind"):
        PrometheusMetrics(registry=prometheus_client.CollectorRegistry(),
                          specs=(Spec(name="x", kind="summary", documentation="x"),))


def test_the_null_implementation_records_nothing_and_accepts_everything():
    metrics = Metrics()
    assert metrics.inc("anything", 3, label="x") is None
    assert metrics.observe("anything", 0.5) is None
    assert metrics.set("anything", 1) is None


def test_a_gauge_without_labels_is_exported_only_by_a_process_that_sets_it():
    registry = prometheus_client.CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry)
    exposition = prometheus_client.generate_latest(registry).decode()
    assert "exsync_orders_parked" not in exposition, "a process that does not own it says nothing, not 0"
    metrics.track("orders_parked", lambda: 3)
    assert registry.get_sample_value("exsync_orders_parked") == 3


def test_build_info_names_the_version_and_the_commit():
    from exsync import __version__
    from exsync.metrics import build_labels

    assert build_labels({"EXSYNC_COMMIT": "abc1234"}) == {"version": __version__, "commit": "abc1234"}
    assert build_labels({}) == {"version": __version__, "commit": "unknown"}
    registry = prometheus_client.CollectorRegistry()
    PrometheusMetrics(registry=registry).set("build_info", 1, **build_labels({"EXSYNC_COMMIT": "abc1234"}))
    assert sample(registry, "exsync_build_info", version=__version__, commit="abc1234") == 1


def test_a_publisher_that_cannot_reach_the_broker_says_so_in_its_gauge():
    from exsync.bus import BrokerUnavailable, Publisher, SharedPublisher
    from tests.support.net import free_port

    registry = prometheus_client.CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry)
    url = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    for publisher in (Publisher(url=url, metrics=metrics), SharedPublisher(url=url, metrics=metrics)):
        with pytest.raises(BrokerUnavailable):
            publisher.check()
        assert sample(registry, "exsync_bus_connected", client="publisher") == 0
        publisher.close()


def test_timed_observes_the_block_with_the_labels_it_completes():
    registry = prometheus_client.CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry)
    with metrics.timed("webhook_request_duration_seconds") as timing:
        timing.labels["outcome"] = "accepted"
    with pytest.raises(ValueError), metrics.timed("woo_reconciler_run_duration_seconds", outcome="error"):
        raise ValueError("a pass that fails is timed too")
    with pytest.raises(ValueError), metrics.timed("bus_publish_duration_seconds", observe_errors=False,
                                                  exchange="woo"):
        raise ValueError("only confirmed publishes are timed")
    with metrics.timed("webhook_request_duration_seconds", outcome="parked") as timing:
        timing.skip()

    assert sample(registry, "exsync_webhook_request_duration_seconds_count", outcome="accepted") == 1
    assert sample(registry, "exsync_woo_reconciler_run_duration_seconds_count", outcome="error") == 1
    assert sample(registry, "exsync_bus_publish_duration_seconds_count", exchange="woo") is None
    assert sample(registry, "exsync_webhook_request_duration_seconds_count", outcome="parked") is None


def test_the_null_implementation_times_nothing_but_runs_the_block():
    ran = []
    with Metrics().timed("webhook_request_duration_seconds", outcome="accepted") as timing:
        ran.append(timing.labels)
    assert ran == [{"outcome": "accepted"}]
