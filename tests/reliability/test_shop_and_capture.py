"""The Exchequer -> shop side under faults: a 429/503 storm with Retry-After in front of the shop during
a full product export (`exsync export products` as a process), and `kill -9` of `exsync capture`
mid-cycle. Both run under `make chaos` only.
"""

import os
import time

import pytest

from exsync.bus import Topology, declare_topology
from exsync.exchequer import connect
from exsync.sandbox import Faults, SandboxServer, SandboxShop
from tests.reliability.support import Pipeline, record_figures
from tests.support.products import demo_company, web_products
from tests.support.rabbit import bind_probe, queue_depth, read_messages
from tests.support.waiting import wait_until

VOLATILE = ("id", "permalink", "slug", "date_created", "date_created_gmt", "date_modified", "date_modified_gmt",
            "_links", "related_ids", "price_html")
ID_LISTS = ("upsell_ids", "cross_sell_ids", "grouped_products", "variations")


def shop_catalogue(shop):
    """Every product as the shop serves it, without what differs between two shops holding the same
    catalogue (ids, dates, slugs); ids that point at products are given as SKUs."""
    with shop.lock:
        products = [shop.product_json(product) for product in shop.products.values()]
    sku_of = {product["id"]: product["sku"] for product in products}
    catalogue = {}
    for product in products:
        shown = {key: value for key, value in product.items() if key not in VOLATILE}
        for key in ID_LISTS:
            shown[key] = sorted(str(sku_of.get(i, i)) for i in shown.get(key) or [])
        shown["parent_id"] = sku_of.get(product.get("parent_id"), product.get("parent_id"))
        shown["categories"] = sorted(category["name"] for category in product.get("categories") or [])
        shown["meta_data"] = sorted((meta["key"], str(meta["value"])) for meta in product.get("meta_data") or [])
        catalogue[product["sku"]] = shown
    return catalogue


def differences(expected, actual):
    """SKUs missing, extra, or with any field different."""
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    changed = sorted(sku for sku in set(expected) & set(actual) if expected[sku] != actual[sku])
    return missing, extra, changed


def export_into(shop, *, dsn, directory, name, amqp_url, timeout_seconds):
    """`exsync export products` from the company at `dsn` into `shop` (served over HTTP) as a process,
    with a state database of its own; returns (exit code, seconds)."""
    credentials = shop.add_credentials()
    with SandboxServer(shop=shop) as server, Pipeline(directory=directory, amqp_url=amqp_url,
                                                      exchequer_dsn=dsn) as pipeline:
        started = time.monotonic()
        process = pipeline.start(name, ["export", "products"],
                                 EXSYNC_STATE_DSN=f"sqlite:///{os.path.join(str(directory), name + '-state.db')}",
                                 EXSYNC_WOO_URL=server.url, EXSYNC_WOO_CONSUMER_KEY=credentials.consumer_key,
                                 EXSYNC_WOO_CONSUMER_SECRET=credentials.consumer_secret)
        code = process.wait(timeout=timeout_seconds)
        return code, time.monotonic() - started


@pytest.mark.chaos
@pytest.mark.timeout(1200)
def test_chaos_a_storm_of_429_and_503_during_a_full_export(amqp_url, run_dir):
    dsn = demo_company(run_dir / "exchequer.db", items=3000, boms=20)
    clean = SandboxShop()
    clean_code, clean_seconds = export_into(clean, dsn=dsn, directory=run_dir, name="export-clean",
                                            amqp_url=amqp_url, timeout_seconds=600)
    # The stormy shop is slow per item as a real host is, so the export lasts through the storm.
    stormy = SandboxShop(faults=Faults(item_latency_seconds=0.01))
    storm = stormy.faults.start_storm(rate=0.3, duration_seconds=60, retry_after_seconds=2, seed=3)
    code, seconds = export_into(stormy, dsn=dsn, directory=run_dir, name="export-storm", amqp_url=amqp_url,
                                timeout_seconds=900)
    missing, extra, changed = differences(shop_catalogue(clean), shop_catalogue(stormy))
    found = len(missing) + len(extra) + len(changed)
    record_figures([("chaos_shop_storm_differences", found, "products", "0")], conditions={
        "scenario": "exsync export products into a shop answering 30 % of requests 429 or 503 with Retry-After 2 "
                    "for 60 s (0.01 s per batch item), compared with a clean export of the same company",
        "web_products": len(shop_catalogue(clean)), "clean_export_seconds": round(clean_seconds, 1),
        "clean_exit_code": clean_code, "storm_export_seconds": round(seconds, 1), "storm_exit_code": code,
        "storm_answers": {str(key): value for key, value in storm.answered.items()},
        "requests_inside_retry_after": storm.answered["inside_retry_after"],
        "missing": len(missing), "extra": len(extra), "changed": len(changed), "changed_examples": changed[:5]})
    assert clean_code == 0
    assert found == 0, (missing[:10], extra[:10], changed[:10])
    assert code == 0
    # Issue 11 §7: a Retry-After pauses the writer's whole client, not only the request that got it.
    assert storm.answered["inside_retry_after"] == 0, dict(storm.answered)


CAPTURE_CONFIG = """\
capture:
  lease_seconds: 3
"""


def published_skus(amqp_url, probe):
    skus = set()
    for event, _ in read_messages(amqp_url, probe, timeout_seconds=3):
        skus.update(item["sku"] for item in event["data"]["items"])
    return skus


def one_cycle(pipeline, name, state, *, attempts=30):
    """`exsync capture --once` until it runs a cycle (not skipped for another holder's lease), as the
    interval loop of a replacement would; returns how many times it was skipped."""
    for skipped in range(attempts):
        process = pipeline.start(name, ["capture", "--once"], EXSYNC_STATE_DSN=state)
        assert process.wait(timeout=600) == 0, pipeline.log_text(name)
        if not pipeline.log_text(name).rstrip().endswith("nothing done"):
            return skipped
        time.sleep(1)
    raise AssertionError(f"the lease was never free: {pipeline.log_text(name)[-2000:]}")


@pytest.mark.chaos
@pytest.mark.timeout(900)
def test_chaos_capture_killed_mid_cycle_loses_no_change(amqp_url, run_dir):
    dsn = demo_company(run_dir / "exchequer.db", items=20000, boms=50)
    with connect(dsn) as database:
        web = set(web_products(database))
    declare_topology(amqp_url, Topology())
    probe = bind_probe(amqp_url, exchange="exchequer", routing_key="product.changed")
    state = f"sqlite:///{run_dir / 'state.db'}"
    with Pipeline(directory=run_dir, amqp_url=amqp_url, exchequer_dsn=dsn, config_text=CAPTURE_CONFIG) as pipeline:
        pipeline.start("capture", ["capture", "--interval-seconds", "600"], EXSYNC_STATE_DSN=state)
        # The first cycle publishes every web product, chunk by chunk: killed once some are out.
        assert wait_until(lambda: queue_depth(amqp_url, probe) >= 2, timeout_seconds=120), \
            pipeline.log_text("capture")
        pipeline.kill("capture")
        before_kill = published_skus(amqp_url, probe)
        killed_at = time.monotonic()
        # The next cycle: a replacement tries each interval until the dead holder's lease has expired.
        skipped = one_cycle(pipeline, "capture-next", state)
        next_cycle = published_skus(amqp_url, probe)
        one_cycle(pipeline, "capture-again", state)
        third_cycle = published_skus(amqp_url, probe)
    lost = web - before_kill - next_cycle
    record_figures([("chaos_capture_kill_changes_lost", len(lost), "products", "0")], conditions={
        "scenario": "exsync capture SIGKILLed during its first cycle (after two product.changed chunks), then "
                    "the next cycle (capture --once, lease_seconds 3) and one more",
        "web_products": len(web), "published_before_kill": len(before_kill), "published_next_cycle": len(next_cycle),
        "published_before_and_again": len(before_kill & next_cycle), "published_third_cycle": len(third_cycle),
        "next_cycle_seconds": round(time.monotonic() - killed_at, 1), "next_cycle_waited_for_the_lease": skipped,
        "backend": "sqlite"})
    assert lost == set(), sorted(lost)[:20]
    assert third_cycle == set(), "a cycle with nothing changed publishes nothing"


