"""The sandbox's REST behaviour over HTTP, where WooCommerce has quirks exsync must live with."""

import datetime
import time

import pytest
import requests
from oauthlib import oauth1

from exsync.sandbox import (
    SandboxServer,
    SandboxShop,
    seed_catalogue,
    seed_customers,
)
from exsync.woo import (
    WooApiError,
    WooAuthError,
    WooBadRequest,
    WooBatchTooLarge,
    WooClient,
)
from exsync.woo.dates import format_wc_datetime, parse_wc_gmt


def test_batch_above_100_items_is_refused_whole(client):
    with pytest.raises(WooBatchTooLarge) as raised:
        client.request("POST", "products/batch", json={"create": [{"name": "x"}] * 60, "delete": list(range(41))})
    assert raised.value.code == "woocommerce_rest_request_entity_too_large" and raised.value.status == 413


def test_batch_items_skip_type_checks_where_a_single_put_refuses(client, shop):
    product = seed_catalogue(shop, count=1)[0]
    with pytest.raises(WooBadRequest) as raised:
        client.update_product(product["id"], {"stock_quantity": "abc"})
    assert raised.value.code == "rest_invalid_param"
    assert "stock_quantity" in raised.value.data["params"]
    result = client.batch_products(update=[{"id": product["id"], "stock_quantity": "abc"}])
    assert result.ok
    assert (result.items[0].body["stock_quantity"], result.items[0].body["stock_status"]) == (0, "outofstock")


def test_prices_must_be_strings_in_a_single_request(client, shop):
    product = seed_catalogue(shop, count=1)[0]
    with pytest.raises(WooBadRequest):
        client.update_product(product["id"], {"regular_price": 12.5})
    assert client.update_product(product["id"], {"regular_price": "12.50"})["price"] == "12.5"


def test_sku_list_is_an_exact_match(client, shop):
    seed_catalogue(shop, count=12)
    found = client.list_page("products", params={"sku": "SKU-0001,SKU-0012,SKU-00"}).items
    assert sorted(p["sku"] for p in found) == ["SKU-0001", "SKU-0012"]


def test_customers_list_only_role_customer_unless_asked(client, shop):
    customers = seed_customers(shop, count=3, wholesale=1)
    assert customers[-1]["role"] == "wholesale_customer"
    assert len(list(client.iter_customers(role="customer"))) == 2
    assert len(client.list_page("customers").items) == 2
    everyone = list(client.iter_customers())
    assert {c["role"] for c in everyone} == {"administrator", "customer", "wholesale_customer"}


def test_role_is_read_only_in_wc_v3_and_changed_through_wordpress(client, shop, sandbox, credentials):
    customer = seed_customers(shop, count=1)[0]
    assert client.update_customer(customer["id"], {"role": "wholesale_customer"})["role"] == "customer"
    with pytest.raises(WooAuthError):
        client.set_user_roles(customer["id"], ["wholesale_customer"], username="admin",
                              application_password=credentials.consumer_secret)
    password = shop.add_application_password(username="admin")
    # Application passwords need HTTPS, except on a site whose environment type is `local`.
    with pytest.raises(WooAuthError):
        client.set_user_roles(customer["id"], ["wholesale_customer"], username="admin", application_password=password)
    shop.environment_type = "local"
    changed = client.set_user_roles(customer["id"], ["wholesale_customer"], username="admin",
                                    application_password=password)
    assert changed["roles"] == ["wholesale_customer"]
    assert client.get_customer(customer["id"])["role"] == "wholesale_customer"


def test_modified_after_compares_local_times_unless_dates_are_gmt(credentials):
    shop = SandboxShop(timezone_offset_hours=2)
    shop.add_credentials(consumer_key=credentials.consumer_key, consumer_secret=credentials.consumer_secret)
    with SandboxServer(shop=shop) as server:
        seed_catalogue(shop, count=1)
        order = shop.create_order({"line_items": [{"sku": "SKU-0001", "quantity": 1}]})
        client = WooClient(url=server.url, consumer_key=credentials.consumer_key,
                           consumer_secret=credentials.consumer_secret)
        bound = format_wc_datetime(parse_wc_gmt(order["date_modified_gmt"]) + datetime.timedelta(hours=1))
        local = client.list_page("orders", params={"modified_after": bound}).items
        gmt = client.list_page("orders", params={"modified_after": bound, "dates_are_gmt": "true"}).items
    # The site is two hours ahead: its local times pass a bound one hour after the order's GMT time.
    assert order["date_modified"] != order["date_modified_gmt"]
    assert [o["id"] for o in local] == [order["id"]] and gmt == []


def _signed_get(url, credentials, **client_options):
    signer = oauth1.Client(credentials.consumer_key, client_secret=credentials.consumer_secret,
                           signature_method=oauth1.SIGNATURE_HMAC_SHA256,
                           signature_type=oauth1.SIGNATURE_TYPE_QUERY, **client_options)
    signed_url, headers, _ = signer.sign(url)
    return requests.get(signed_url, headers=headers, timeout=5)


def test_oauth_timestamp_must_be_within_15_minutes_and_nonce_used_once(sandbox, credentials):
    url = f"{sandbox.url}/wp-json/wc/v3/products"
    stale = _signed_get(url, credentials, timestamp=str(int(time.time()) - 16 * 60))
    assert stale.status_code == 401 and stale.json()["message"] == "Invalid timestamp."
    first = _signed_get(url, credentials, nonce="n0nce1234")
    replay = _signed_get(url, credentials, nonce="n0nce1234")
    assert first.status_code == 200
    assert replay.status_code == 401 and "nonce" in replay.json()["message"]


def test_read_only_key_cannot_write(sandbox, shop):
    read_only = shop.add_credentials(permissions="read")
    client = WooClient(url=sandbox.url, consumer_key=read_only.consumer_key,
                       consumer_secret=read_only.consumer_secret)
    assert client.list_page("products").items == []
    with pytest.raises(WooAuthError) as raised:
        client.create_product({"name": "x"})
    assert "write permissions" in raised.value.message


def test_webhooks_cannot_be_trashed_and_refuse_bad_topics(client, receiver):
    webhook = client.create_webhook({"name": "x", "topic": "order.updated", "delivery_url": receiver.url,
                                     "secret": "s"})
    assert webhook["hooks"] == ["woocommerce_update_order", "woocommerce_order_refunded"]
    with pytest.raises(WooApiError) as raised:
        client.request("DELETE", f"webhooks/{webhook['id']}")
    assert raised.value.status == 501
    with pytest.raises(WooBadRequest) as bad:
        client.create_webhook({"topic": "order.shipped", "delivery_url": receiver.url})
    assert bad.value.code == "woocommerce_rest_webhook_invalid_topic"
    client.delete_webhook(webhook["id"])
    assert list(client.iter_webhooks()) == []


def test_per_page_over_100_is_rest_invalid_param_with_the_bound_in_details(sandbox, credentials):
    answer = _signed_get(f"{sandbox.url}/wp-json/wc/v3/products?per_page=101", credentials)
    assert answer.status_code == 400
    body = answer.json()
    assert body["code"] == "rest_invalid_param" and body["data"]["status"] == 400
    assert body["data"]["details"]["per_page"]["code"] == "rest_out_of_bounds"
    assert "per_page" in body["data"]["params"]


def test_every_answer_links_the_api_root_and_lists_link_their_pages(sandbox, credentials, shop):
    seed_catalogue(shop, count=1)
    for _ in range(3):
        shop.create_order({"line_items": [{"sku": "SKU-0001", "quantity": 1}]})
    api_root = f'<{sandbox.url}/wp-json/>; rel="https://api.w.org/"'
    missing = _signed_get(f"{sandbox.url}/wp-json/wc/v3/orders/999999", credentials)
    assert missing.status_code == 404 and api_root in missing.headers["Link"]

    first = _signed_get(f"{sandbox.url}/wp-json/wc/v3/orders?per_page=2", credentials)
    assert api_root in first.headers["Link"]
    next_url = first.links["next"]["url"]
    # The next page repeats the request's query, OAuth parameters included, plus what WordPress filled in.
    assert next_url.startswith(f"{sandbox.url}/wp-json/wc/v3/orders?per_page=2&oauth_")
    assert next_url.endswith("&status[0]=any&dp=2&context=view&page=2")
    assert "prev" not in first.links
    second = _signed_get(f"{sandbox.url}/wp-json/wc/v3/orders?per_page=2&page=2", credentials)
    assert second.links["prev"]["url"].endswith("&page=1") and "next" not in second.links
    past = _signed_get(f"{sandbox.url}/wp-json/wc/v3/orders?per_page=2&page=5", credentials)
    assert past.json() == [] and past.headers["X-WP-TotalPages"] == "0"
    # Past the end WordPress counts no pages, so "prev" points at page 0.
    assert past.links["prev"]["url"].endswith("&page=0")


def test_rest_orders_have_no_customer_ip_address(client, shop):
    seed_catalogue(shop, count=1)
    order = client.create_order({"line_items": [{"sku": "SKU-0001", "quantity": 1}]})
    assert order["customer_ip_address"] == "" and order["created_via"] == "rest-api"


def test_webhooks_never_show_their_secret_or_api_version(client, receiver):
    created = client.create_webhook({"name": "x", "topic": "order.updated", "delivery_url": receiver.url,
                                     "secret": "s3cret", "api_version": "wp_api_v3"})
    shown = [created, client.get_webhook(created["id"]), client.get(f"webhooks/{created['id']}", context="edit"),
             *client.iter_webhooks(), client.update_webhook(created["id"], {"secret": "other"})]
    for webhook in shown:
        assert "secret" not in webhook and "api_version" not in webhook
        assert webhook["delivery_url"] == receiver.url


def test_the_request_log_records_every_call(client, shop):
    client.create_product({"name": "Logged", "sku": "LOG-1"})
    client.list_page("products")
    assert shop.request_log[-2:] == [("POST", "/wp-json/wc/v3/products", 201),
                                     ("GET", "/wp-json/wc/v3/products", 200)]
