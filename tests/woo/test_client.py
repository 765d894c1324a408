"""The REST client against the sandbox shop over real HTTP: pages, batches, retries, errors, auth."""

import datetime
import subprocess
import time

import pytest

from exsync.sandbox import SandboxServer, SandboxShop, place_order, seed_catalogue
from exsync.woo import (
    WooAuthError,
    WooBadRequest,
    WooClient,
    WooNotFound,
    WooRateLimited,
    WooServerError,
    WooTransportError,
    normalise_route,
)
from tests.support.net import free_port


def _products(count, prefix="P-"):
    return [{"name": f"Item {n}", "sku": f"{prefix}{n:04d}", "regular_price": "5.00", "manage_stock": True,
             "stock_quantity": 10} for n in range(count)]


def test_pages_follow_total_pages_not_link(shop, credentials, metrics):
    # The Link header points somewhere unreachable, as behind a misconfigured proxy.
    with SandboxServer(shop=shop, link_base_url=f"https://127.0.0.1:{free_port()}") as server:
        seed_catalogue(shop, count=250)
        client = WooClient(url=server.url, consumer_key=credentials.consumer_key,
                           consumer_secret=credentials.consumer_secret, requests_per_second=500, metrics=metrics)
        pages = list(client.iter_pages("products"))
    assert [len(page.items) for page in pages] == [100, 100, 50]
    assert {page.total_pages for page in pages} == {3} and {page.total for page in pages} == {250}
    assert len({p["id"] for page in pages for p in page.items}) == 250
    assert metrics.count("woo_requests", endpoint="products", status="200") == 3


def test_page_past_the_end_is_empty_with_zero_totals(client, shop):
    seed_catalogue(shop, count=3)
    page = client.list_page("products", page=2, per_page=100)
    assert page.items == [] and page.total == 0 and page.total_pages == 0


def test_batches_are_split_at_100_items(client, metrics):
    for count, requests in ((100, 1), (101, 2), (250, 3)):
        before = metrics.count("woo_requests", endpoint="products/batch")
        result = client.batch_products(create=_products(count, prefix=f"B{count}-"))
        assert result.ok and len(result.items) == count
        assert [item.body["sku"] for item in result.items] == [f"B{count}-{n:04d}" for n in range(count)]
        assert metrics.count("woo_requests", endpoint="products/batch") - before == requests


def test_create_update_delete_count_together_and_answer_per_item(client):
    created = client.batch_products(create=_products(60)).items
    ids = [item.body["id"] for item in created]
    result = client.batch_products(
        create=[{"name": "Dup", "sku": "P-0000"}, {"name": "New", "sku": "NEW-1"}],
        update=[{"id": ids[0], "regular_price": "6.50"}, {"id": 999999, "regular_price": "1.00"}]
        + [{"id": i, "stock_quantity": 3} for i in ids[1:50]],
        delete=ids[50:])
    assert len(result.items) == 2 + 51 + 10
    failed = {(item.action, item.index): item.error for item in result.failed}
    assert set(failed) == {("create", 0), ("update", 1)}
    assert failed[("create", 0)].code == "product_invalid_sku"
    assert failed[("update", 1)].code == "woocommerce_rest_product_invalid_id" and failed[("update", 1)].status == 400
    assert result.for_action("update")[0].body["regular_price"] == "6.5"
    assert [item.body["id"] for item in result.for_action("delete")] == ids[50:]
    assert client.products_by_sku(["P-0000", "P-0055", "NEW-1"]).keys() == {"P-0000", "NEW-1"}


def test_batch_too_large_for_the_shop_is_halved(shop, client, metrics):
    shop.batch_limit = 40
    result = client.batch_products(create=_products(100))
    assert result.ok and len(result.items) == 100
    # 100 and 50 are refused; 25 at a time fits.
    assert metrics.count("woo_requests", endpoint="products/batch", status="413") == 2
    assert metrics.count("woo_requests", endpoint="products/batch", status="200") == 4


def test_429_waits_at_least_retry_after(shop, client, metrics):
    shop.faults.inject(status=429, retry_after_seconds=1, route_prefix="products")
    started = time.monotonic()
    assert client.list_page("products").items == []
    assert time.monotonic() - started >= 1.0
    assert metrics.count("woo_request_retries", endpoint="products", reason="429") == 1


def test_5xx_is_retried_then_raised(shop, client, metrics):
    shop.faults.inject(status=503, count=2, route_prefix="orders")
    assert client.list_page("orders").items == []
    shop.faults.inject(status=502, count=10, route_prefix="orders")
    with pytest.raises(WooServerError) as raised:
        client.list_page("orders")
    assert raised.value.status == 502
    assert metrics.count("woo_requests", endpoint="orders", status="502") == client.max_attempts


def test_4xx_is_never_retried_and_keeps_woocommerce_codes(client, metrics):
    with pytest.raises(WooNotFound) as missing:
        client.get_order(999999)
    with pytest.raises(WooBadRequest) as bad:
        client.update_order_status(999999, "completed")
    assert missing.value.code == bad.value.code == "woocommerce_rest_shop_order_invalid_id"
    assert (missing.value.status, bad.value.status) == (404, 400)
    with pytest.raises(WooBadRequest) as bounds:
        client.list_page("products", per_page=101)
    assert bounds.value.code == "rest_invalid_param"
    assert bounds.value.data["details"]["per_page"]["code"] == "rest_out_of_bounds"
    assert metrics.count("woo_request_retries") == 0


def test_retry_after_longer_than_allowed_is_left_to_the_caller(shop, client):
    shop.faults.inject(status=429, retry_after_seconds=3600)
    with pytest.raises(WooRateLimited) as raised:
        client.list_page("products")
    assert raised.value.retry_after_seconds == 3600


def test_connection_refused_is_retried_then_translated(metrics):
    client = WooClient(url=f"http://127.0.0.1:{free_port()}", consumer_key="ck", consumer_secret="cs",
                       max_attempts=3, backoff_initial_seconds=0.01, metrics=metrics)
    with pytest.raises(WooTransportError) as raised:
        client.list_page("orders")
    assert raised.value.sent is False
    assert metrics.count("woo_requests", endpoint="orders", status="error") == 3


@pytest.mark.parametrize("method,signature_type", [("HMAC-SHA256", "query"), ("HMAC-SHA1", "header")])
def test_oauth_over_http_is_accepted(sandbox, credentials, shop, method, signature_type):
    seed_catalogue(shop, count=2)
    client = WooClient(url=sandbox.url, consumer_key=credentials.consumer_key,
                       consumer_secret=credentials.consumer_secret, signature_method=method,
                       signature_type=signature_type)
    assert set(client.products_by_sku(["SKU-0001", "SKU-0002"])) == {"SKU-0001", "SKU-0002"}
    assert client.update_product(client.products_by_sku(["SKU-0001"])["SKU-0001"]["id"],
                                 {"stock_quantity": 7})["stock_quantity"] == 7


def test_bad_oauth_signature_and_unknown_key_are_refused(sandbox, credentials):
    wrong_secret = WooClient(url=sandbox.url, consumer_key=credentials.consumer_key, consumer_secret="cs_wrong")
    with pytest.raises(WooAuthError) as raised:
        wrong_secret.list_page("orders")
    assert raised.value.code == "woocommerce_rest_authentication_error" and raised.value.status == 401
    assert "signature" in raised.value.message
    unknown_key = WooClient(url=sandbox.url, consumer_key="ck_unknown", consumer_secret=credentials.consumer_secret)
    with pytest.raises(WooAuthError) as raised:
        unknown_key.list_page("orders")
    assert raised.value.code == "woocommerce_rest_authentication_error" and "key" in raised.value.message


def test_basic_over_plain_http_counts_as_no_credentials(sandbox, credentials):
    import requests

    url = f"{sandbox.url}/wp-json/wc/v3/orders"
    basic = requests.get(url, auth=(credentials.consumer_key, credentials.consumer_secret), timeout=5)
    anonymous = requests.get(url, timeout=5)
    for response in (basic, anonymous):
        assert response.status_code == 401 and response.json()["code"] == "woocommerce_rest_cannot_view"


@pytest.fixture
def tls_files(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return str(cert), str(key)


def test_basic_over_https_with_verified_tls(shop, credentials, tls_files):
    cert, key = tls_files
    with SandboxServer(shop=shop, ssl_context=(cert, key)) as server:
        assert server.url.startswith("https://")
        trusting = WooClient(url=server.url, consumer_key=credentials.consumer_key,
                             consumer_secret=credentials.consumer_secret, verify=cert)
        parent = trusting.create_category(name="Gadgets")
        trusting.create_category(name="Small Gadgets", parent=parent["id"])
        assert parent["slug"] == "gadgets"
        assert [c["name"] for c in trusting.iter_categories(params={"parent": parent["id"]})] == ["Small Gadgets"]
        assert [c["id"] for c in trusting.iter_categories(params={"slug": "gadgets"})] == [parent["id"]]
        wrong = WooClient(url=server.url, consumer_key=credentials.consumer_key, consumer_secret="cs_wrong", verify=cert)
        with pytest.raises(WooAuthError) as raised:
            wrong.list_page("products")
        assert raised.value.code == "woocommerce_rest_authentication_error"
        default = WooClient(url=server.url, consumer_key=credentials.consumer_key,
                            consumer_secret=credentials.consumer_secret, max_attempts=3)
        with pytest.raises(WooTransportError) as untrusted:
            default.list_page("products")
        assert "TLS" in str(untrusted.value)


def test_orders_notes_refunds_and_shipping(client, shop):
    seed_catalogue(shop, count=1)
    zone = shop.add_shipping_zone(name="UK", methods=[{"method_id": "flat_rate", "title": "Standard", "cost": "4.95"}])
    method = client.list_shipping_zone_methods(zone["id"])[0]
    order = place_order(shop, lines=[("SKU-0001", 3)], shipping_line={
        "method_id": "flat_rate", "instance_id": str(method["instance_id"]), "method_title": "Standard",
        "total": "4.95"})
    fetched = client.get_order(order["id"])
    assert fetched["total"] == "34.95" and fetched["line_items"][0]["price"] == 10.0
    assert fetched["shipping_lines"][0]["instance_id"] == str(method["instance_id"])
    client.add_order_note(order["id"], "Sent to Exchequer as SOR000123", customer_note=True)
    notes = client.list_order_notes(order["id"])
    assert notes[0]["customer_note"] is True and notes[0]["note"].endswith("SOR000123")
    assert client.get_order(order["id"])["date_modified_gmt"] == fetched["date_modified_gmt"]
    with pytest.raises(WooServerError) as refused:
        client.create_refund(order["id"], amount="5.00", api_refund=True)
    assert refused.value.data == 500
    refund = client.create_refund(order["id"], amount="5.00", reason="damaged")
    assert client.get_order(order["id"])["refunds"] == [{"id": refund["id"], "reason": "damaged", "total": "-5.00"}]
    assert [m["id"] for m in client.list_shipping_methods()] == ["flat_rate", "free_shipping", "local_pickup"]
    assert client.list_shipping_zones()[1]["name"] == "UK"
    totals = {row["slug"]: row["total"] for row in client.order_status_totals()}
    assert totals["processing"] == 1 and totals["refunded"] == 0


def test_modified_orders_are_walked_by_time_so_a_change_mid_walk_skips_nothing(credentials):
    clock = [datetime.datetime(2026, 11, 27, 9, 0, tzinfo=datetime.UTC)]
    shop = SandboxShop(clock=lambda: clock[0])
    shop.add_credentials(consumer_key=credentials.consumer_key, consumer_secret=credentials.consumer_secret)
    with SandboxServer(shop=shop) as server:
        orders = []
        for _ in range(150):
            clock[0] += datetime.timedelta(seconds=1)
            orders.append(shop.create_order({"status": "processing"}))
        client = WooClient(url=server.url, consumer_key=credentials.consumer_key,
                           consumer_secret=credentials.consumer_secret, requests_per_second=500)
        walk = client.iter_modified_orders(modified_after=clock[0] - datetime.timedelta(hours=1))
        seen = list(next(walk))
        # An order already seen changes: it moves to the end; page 2 by number would now skip one.
        clock[0] += datetime.timedelta(minutes=5)
        shop.update_order(orders[5]["id"], {"status": "completed"})
        for batch in walk:
            seen.extend(batch)
    assert len(seen) == 151
    assert {o["id"] for o in seen} == {o["id"] for o in orders}
    assert [o["id"] for o in seen][-1] == orders[5]["id"] and seen[-1]["status"] == "completed"


def test_routes_are_normalised_without_ids():
    assert normalise_route("orders/123/notes") == "orders/{id}/notes"
    assert normalise_route("/products/batch") == "products/batch"
    assert normalise_route("shipping/zones/4/methods?x=1") == "shipping/zones/{id}/methods"
