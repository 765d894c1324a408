"""Two-way customer sync against the sandbox shop over HTTP and a real company database."""

import datetime
import time

import prometheus_client
import pytest

from exsync.bus import PermanentError
from exsync.config import load_settings
from exsync.consumers.customer_accounts import customer_key
from exsync.consumers.customers import CustomersConsumer, build, build_export
from exsync.consumers.errors import ConsumerError, CustomerBusyError, LinkChangedError
from exsync.exchequer import ExchequerReader, SqlWriteBackend, connect, edit_account
from exsync.exchequer.account_capture import AccountCapture
from exsync.exchequer.writer import KIND_ACCOUNT
from exsync.metrics import Metrics, PrometheusMetrics
from exsync.schemas.config import validate_config
from exsync.state.links import SHOP_DELETED, Link
from tests.consumers.conftest import company


def customers_config(**customers):
    loaded, problems = validate_config({"customers": customers})
    assert problems == []
    return loaded


def shop_event(woo_id, topic="customer.updated"):
    return {"specversion": "1.0", "id": f"c-{woo_id}-{topic}", "source": "https://shop.example/",
            "type": f"woo.{topic}", "time": "2026-11-27T10:00:00Z", "subject": str(woo_id), "data": {"id": woo_id}}


def account_event(*codes):
    return {"specversion": "1.0", "id": "a-" + "-".join(codes), "source": "exsync/exchequer/capture",
            "type": "exchequer.account.changed", "time": "2026-11-27T10:00:00Z", "subject": "ZZZZ01",
            "data": {"company": "ZZZZ01", "accounts": [{"code": code, "seen_at": 0.0} for code in codes]}}


def register(shop, email="jane@example.test", **extra):
    body = {"email": email, "first_name": "Jane", "last_name": "Smith",
            "billing": {"first_name": "Jane", "last_name": "Smith", "company": "", "address_1": "2 Mill Lane",
                        "address_2": "", "city": "York", "state": "", "postcode": "YO1 1AA", "country": "GB",
                        "email": email, "phone": "01904 111111"}}
    body.update(extra)
    return shop.create_customer(body)


@pytest.fixture(params=["sqlite", "postgresql"])
def company_dsn(request, tmp_path):
    dsn = f"sqlite:///{tmp_path}/exchequer.db" if request.param == "sqlite" else request.getfixturevalue("pg_odbc_dsn")
    company(dsn)
    return dsn


@pytest.fixture
def sqlite_company_dsn(tmp_path):
    dsn = f"sqlite:///{tmp_path}/exchequer.db"
    company(dsn)
    return dsn


@pytest.fixture
def make_sync(sandbox_shop):
    shop, client, _ = sandbox_shop
    made = []

    def make(dsn, *, roles=True, clock=None, **customers):
        # WordPress takes application passwords over plain HTTP only on a "local" site.
        shop.environment_type = "local"
        password = shop.add_application_password() if roles else None
        options = {"clock": clock} if clock else {}
        consumer = CustomersConsumer(exchequer_dsn=dsn, config=customers_config(**customers), client=client,
                                     wp_username="admin" if roles else None, wp_application_password=password,
                                     **options)
        made.append(consumer)
        return consumer

    yield make
    for consumer in made:
        consumer._per_thread.close()


def account(dsn, code):
    with connect(dsn) as database:
        return ExchequerReader(database=database).account(code)


def edit(dsn, code, **changes):
    with connect(dsn) as database:
        edit_account(database, code, **changes)


def synced(shop, sync, dsn, **registration):
    """A registered shop customer synced once, and the code of the account linked to them."""
    customer = register(shop, **registration)
    sync.sync_customer(customer["id"])
    return customer, linked_code(dsn, customer["id"])


def linked_code(dsn, woo_id):
    with connect(dsn) as database:
        return SqlWriteBackend(database=database).existing_reference(KIND_ACCOUNT, customer_key(woo_id))


def test_a_new_shop_customer_becomes_an_account_linked_by_the_orders_key(sandbox_shop, make_sync, company_dsn):
    shop, _, _ = sandbox_shop
    sync = make_sync(company_dsn)
    customer = register(shop)
    before = {a.code for a in _accounts(company_dsn)}

    assert sync.handle_event(shop_event(customer["id"], "customer.created")) == {customer["id"]: "created"}
    code = linked_code(company_dsn, customer["id"])
    assert code.startswith("SMIT") and code not in before  # generated from the surname
    made = account(company_dsn, code)
    assert (made.contact, made.email, made.post_code, made.phone, made.address[0], made.address[2],
            made.address[4], made.price_band) == ("Jane Smith", "jane@example.test", "YO1 1AA", "01904 111111",
                                                  "2 Mill Lane", "York", "GB", "A")
    # The shop's second webhook for the same registration, and any repeat, change nothing.
    assert sync.handle_event(shop_event(customer["id"])) == {customer["id"]: "unchanged"}
    assert sync.links.get(customer["id"]).account_code == code


def test_a_shop_customer_with_the_e_mail_of_an_account_is_linked_to_it_and_gaps_filled(sandbox_shop, make_sync,
                                                                                       sqlite_company_dsn):
    shop, _, _ = sandbox_shop
    dsn = sqlite_company_dsn
    existing = _accounts(dsn)[0]
    edit(dsn, existing.code, phone="")
    customer = register(shop, email=existing.email.upper(), first_name="", last_name="",
                        billing={"phone": "07700 900123", "email": existing.email})
    sync = make_sync(dsn)

    assert sync.sync_customer(customer["id"]) == "updated"
    assert linked_code(dsn, customer["id"]) == existing.code
    after = account(dsn, existing.code)
    assert after.phone == "07700 900123"  # empty in Exchequer: taken from the shop
    assert after.contact == existing.contact  # empty in the shop: kept, and sent there
    shop_side = shop.get_customer(customer["id"])
    assert f"{shop_side['first_name']} {shop_side['last_name']}" == existing.contact
    assert shop_side["billing"]["postcode"] == existing.post_code


def _accounts(dsn):
    with connect(dsn) as database:
        return [a for a in ExchequerReader(database=database).iter_accounts() if a.email]


def test_edits_flow_both_ways_and_our_own_writes_do_not_echo(sandbox_shop, make_sync, company_dsn):
    shop, client, _ = sandbox_shop
    sync = make_sync(company_dsn)
    customer, code = synced(shop, sync, company_dsn)

    shop.update_customer(customer["id"], {"billing": {"phone": "01904 222222"}})
    assert sync.handle_event(shop_event(customer["id"])) == {customer["id"]: "updated"}
    assert account(company_dsn, code).phone == "01904 222222"
    modified = shop.get_customer(customer["id"])["date_modified_gmt"]
    # Capture sees our write to the account: nothing goes back to the shop.
    assert sync.handle_event(account_event(code)) == {code: "unchanged"}
    assert shop.get_customer(customer["id"])["date_modified_gmt"] == modified

    edit(company_dsn, code, company="Smith Trading Ltd", post_code="YO2 2BB")
    assert sync.handle_event(account_event(code)) == {code: "updated"}
    shop_side = shop.get_customer(customer["id"])
    assert (shop_side["billing"]["company"], shop_side["billing"]["postcode"]) == ("Smith Trading Ltd", "YO2 2BB")
    # The shop's webhook for our write merges to nothing.
    assert sync.handle_event(shop_event(customer["id"])) == {customer["id"]: "unchanged"}
    assert account(company_dsn, code).company == "Smith Trading Ltd"


def test_accounts_with_an_e_mail_become_shop_customers_as_configured(sandbox_shop, make_sync, sqlite_company_dsn):
    shop, _, _ = sandbox_shop
    dsn = sqlite_company_dsn
    first, second = _accounts(dsn)[:2]
    edit(dsn, second.code, email="")

    assert make_sync(dsn).sync_account(first.code) == "not_exported"  # by default only linked accounts
    sync = make_sync(dsn, export_accounts="all")
    assert sync.sync_account(second.code) == "no_email"
    assert sync.sync_account(first.code) == "created"
    [made] = [c for c in shop.list_customers({"role": "all"}) if c["email"] == first.email.lower()]
    assert f"{made['first_name']} {made['last_name']}" == first.contact
    assert made["role"] == ("wholesale_customer" if first.price_band == "B" else "customer")
    assert linked_code(dsn, made["id"]) == first.code
    assert sync.sync_account(first.code) == "unchanged"
    # The shop's webhooks for the new customer find it linked and agreed.
    assert sync.handle_event(shop_event(made["id"], "customer.created")) == {made["id"]: "unchanged"}


def test_an_account_whose_e_mail_is_already_a_shop_customer_is_linked_not_duplicated(sandbox_shop, make_sync,
                                                                                     sqlite_company_dsn):
    shop, _, _ = sandbox_shop
    dsn = sqlite_company_dsn
    target = _accounts(dsn)[0]
    customer = register(shop, email=target.email)
    sync = make_sync(dsn, export_accounts="all")

    assert sync.sync_account(target.code) in ("updated", "unchanged")
    assert linked_code(dsn, customer["id"]) == target.code
    assert len([c for c in shop.list_customers({"role": "all"}) if c["email"] == target.email.lower()]) == 1


@pytest.mark.parametrize(("policy", "shop_wins"), [("woo", True), ("exchequer", False)])
def test_a_field_changed_on_both_sides_follows_its_policy(sandbox_shop, make_sync, sqlite_company_dsn, policy,
                                                          shop_wins):
    shop, _, _ = sandbox_shop
    dsn = sqlite_company_dsn
    sync = make_sync(dsn, conflicts={"default": "manual", "fields": {"phone": policy}})
    customer, code = synced(shop, sync, dsn)

    shop.update_customer(customer["id"], {"billing": {"phone": "0100 SHOP"}})
    edit(dsn, code, phone="0100 EXCHEQUER")
    assert sync.sync_customer(customer["id"]) == "updated"
    expected = "0100 SHOP" if shop_wins else "0100 EXCHEQUER"
    assert account(dsn, code).phone == expected
    assert shop.get_customer(customer["id"])["billing"]["phone"] == expected
    assert sync.links.conflicts(customer["id"]) == []
    # The value the policy overrode is kept, with both values and who decided.
    [decision] = sync.links.decisions(customer["id"])
    assert (decision.field, decision.account_code, decision.woo_value, decision.exchequer_value, decision.base_value,
            decision.policy, decision.winner) == ("phone", code, "0100 SHOP", "0100 EXCHEQUER", "01904 111111",
                                                  policy, policy)


def test_newest_takes_the_side_changed_last(tmp_path, sqlite_company_dsn):
    from exsync.sandbox import SandboxServer, SandboxShop
    from exsync.woo import WooClient

    dsn = sqlite_company_dsn
    shop_time = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    shop = SandboxShop(clock=lambda: shop_time)
    credentials = shop.add_credentials()
    now = [time.time()]
    with SandboxServer(shop=shop) as server, WooClient(
            url=server.url, consumer_key=credentials.consumer_key, consumer_secret=credentials.consumer_secret,
            requests_per_second=500) as client:
        sync = CustomersConsumer(exchequer_dsn=dsn, config=customers_config(), client=client, clock=lambda: now[0])
        try:
            customer = register(shop)
            sync.sync_customer(customer["id"])
            code = linked_code(dsn, customer["id"])
            # Capture sees the account's change today; the shop's clock says 2030: the shop's is newer.
            edit(dsn, code, phone="0100 EXCHEQUER")
            with connect(dsn) as database:
                AccountCapture(database=database, state_database=database, publisher=_Confirming(),
                               company="ZZZZ01").run_once()
            shop.update_customer(customer["id"], {"billing": {"phone": "0100 SHOP"}})
            assert sync.sync_customer(customer["id"]) == "updated"
            assert account(dsn, code).phone == "0100 SHOP"

            # An account change capture has not seen yet counts as now, here 2100: later than the shop's.
            now[0] = datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC).timestamp()
            shop.update_customer(customer["id"], {"billing": {"phone": "0200 SHOP"}})
            edit(dsn, code, phone="0200 EXCHEQUER")
            assert sync.sync_customer(customer["id"]) == "updated"
            assert shop.get_customer(customer["id"])["billing"]["phone"] == "0200 EXCHEQUER"
        finally:
            sync._per_thread.close()


class _Confirming:
    def publish(self, *, exchange, routing_key, event, headers=None):
        pass


@pytest.mark.parametrize("company_db", ["sqlite", "postgresql"])
def test_newest_within_the_same_second_is_a_conflict_not_a_silent_win(tmp_path, company_db, request):
    """Issue 12 §6: a shop edit and an Exchequer edit within one second went Exchequer's way and the shop's
    value vanished. The shop keeps whole seconds, so neither can be called newer: a person decides."""
    from exsync.sandbox import SandboxServer, SandboxShop
    from exsync.woo import WooClient

    dsn = f"sqlite:///{tmp_path}/exchequer.db" if company_db == "sqlite" else request.getfixturevalue("pg_odbc_dsn")
    company(dsn)
    second = datetime.datetime(2031, 5, 1, 12, 0, 7, tzinfo=datetime.UTC)
    shop = SandboxShop(clock=lambda: second)
    credentials = shop.add_credentials()
    now = [second.timestamp() + 0.4]  # Exchequer's edit, not yet seen by capture: "now", in the shop's second
    metrics = _Counting()
    with SandboxServer(shop=shop) as server, WooClient(
            url=server.url, consumer_key=credentials.consumer_key, consumer_secret=credentials.consumer_secret,
            requests_per_second=500) as client:
        sync = CustomersConsumer(exchequer_dsn=dsn, config=customers_config(), client=client, clock=lambda: now[0],
                                 metrics=metrics)
        try:
            customer = register(shop)
            sync.sync_customer(customer["id"])
            code = linked_code(dsn, customer["id"])
            shop.update_customer(customer["id"], {"billing": {"phone": "0400 SHOP"}})
            edit(dsn, code, phone="0400 EXCHEQUER")
            assert sync.sync_customer(customer["id"]) == "conflict"
            # Neither side lost its value, and the conflict waits for a person.
            assert account(dsn, code).phone == "0400 EXCHEQUER"
            assert shop.get_customer(customer["id"])["billing"]["phone"] == "0400 SHOP"
            [conflict] = sync.links.conflicts(customer["id"])
            assert (conflict.field, conflict.woo_value, conflict.exchequer_value) == (
                "phone", "0400 SHOP", "0400 EXCHEQUER")
            [decision] = sync.links.decisions(customer["id"])
            assert (decision.policy, decision.winner, decision.woo_value, decision.exchequer_value) == (
                "newest", "manual", "0400 SHOP", "0400 EXCHEQUER")
            assert metrics.counted[("customer_values_overridden", (("field", "phone"), ("policy", "newest")))] == 1

            # A second later Exchequer's next edit is newer: it wins, and the shop's value is on record.
            now[0] += 1
            edit(dsn, code, phone="0500 EXCHEQUER")
            assert sync.sync_customer(customer["id"]) == "updated"
            assert shop.get_customer(customer["id"])["billing"]["phone"] == "0500 EXCHEQUER"
            latest = sync.links.decisions(customer["id"])[0]
            assert (latest.policy, latest.winner, latest.woo_value, latest.exchequer_value) == (
                "newest", "exchequer", "0400 SHOP", "0500 EXCHEQUER")
        finally:
            sync._per_thread.close()


class _Counting(Metrics):
    def __init__(self):
        self.counted = {}

    def inc(self, name, amount=1, **labels):
        key = (name, tuple(sorted(labels.items())))
        self.counted[key] = self.counted.get(key, 0) + amount


def test_manual_leaves_both_sides_until_a_person_resolves(sandbox_shop, make_sync, sqlite_company_dsn):
    shop, _, _ = sandbox_shop
    dsn = sqlite_company_dsn
    sync = make_sync(dsn, conflicts={"default": "newest", "fields": {"email": "manual"}})
    customer, code = synced(shop, sync, dsn)

    shop.update_customer(customer["id"], {"email": "jane@shop.example", "billing": {"phone": "0300 SHOP"}})
    edit(dsn, code, email="jane@books.example")
    assert sync.sync_customer(customer["id"]) == "updated"  # the phone went across
    assert account(dsn, code).phone == "0300 SHOP"
    assert (account(dsn, code).email, shop.get_customer(customer["id"])["email"]) == (
        "jane@books.example", "jane@shop.example")
    [conflict] = sync.links.conflicts()
    assert (conflict.woo_id, conflict.field, conflict.woo_value, conflict.exchequer_value, conflict.base_value) == (
        customer["id"], "email", "jane@shop.example", "jane@books.example", "jane@example.test")
    # Still a conflict on the next event, recorded once.
    assert sync.sync_customer(customer["id"]) == "conflict"
    assert len(sync.links.conflicts()) == 1

    with pytest.raises(ConsumerError):
        sync.resolve(customer["id"], "phone", "woo")
    assert sync.resolve(customer["id"], "email", "exchequer") == "updated"
    assert shop.get_customer(customer["id"])["email"] == "jane@books.example"
    assert sync.links.conflicts() == []
    assert sync.sync_customer(customer["id"]) == "unchanged"


def test_the_wholesale_band_and_role_follow_each_other(sandbox_shop, make_sync, sqlite_company_dsn):
    shop, _, _ = sandbox_shop
    dsn = sqlite_company_dsn
    sync = make_sync(dsn)
    customer, code = synced(shop, sync, dsn)

    edit(dsn, code, price_band="B")
    assert sync.sync_account(code) == "updated"
    assert shop.get_customer(customer["id"])["role"] == "wholesale_customer"

    shop.set_user_roles(customer["id"], ["customer"])  # WordPress fires no webhook: the reconciler finds it
    assert sync.sync_customer(customer["id"]) == "updated"
    assert account(dsn, code).price_band == "A"


def test_without_wordpress_credentials_the_role_waits_and_the_rest_syncs(sandbox_shop, make_sync,
                                                                         sqlite_company_dsn):
    shop, _, _ = sandbox_shop
    dsn = sqlite_company_dsn
    sync = make_sync(dsn, roles=False)
    customer, code = synced(shop, sync, dsn)

    edit(dsn, code, price_band="B", phone="0400 000000")
    assert sync.sync_account(code) == "updated"
    shop_side = shop.get_customer(customer["id"])
    assert (shop_side["role"], shop_side["billing"]["phone"]) == ("customer", "0400 000000")
    # Agreed as the shop has it, so Exchequer's band stays a change to send (and is not undone).
    assert sync.links.get(customer["id"]).snapshot["wholesale"] is False
    assert sync.sync_account(code) == "unchanged"
    assert account(dsn, code).price_band == "B"
    # With credentials the next sync sets the role.
    assert make_sync(dsn).sync_account(code) == "updated"
    assert shop.get_customer(customer["id"])["role"] == "wholesale_customer"


def test_a_customer_deleted_in_the_shop_keeps_the_account_and_is_not_recreated(sandbox_shop, make_sync,
                                                                               sqlite_company_dsn):
    shop, _, _ = sandbox_shop
    dsn = sqlite_company_dsn
    sync = make_sync(dsn)
    customer, code = synced(shop, sync, dsn)

    shop.delete_customer(customer["id"], force=True)
    assert sync.handle_event(shop_event(customer["id"], "customer.deleted")) == {customer["id"]: "deleted"}
    assert sync.links.get(customer["id"]).state == SHOP_DELETED
    assert account(dsn, code).email == "jane@example.test"
    edit(dsn, code, phone="0500 000000")
    assert sync.sync_account(code) == "shop_deleted"
    assert not [c for c in shop.list_customers({"role": "all"}) if c["email"] == "jane@example.test"]


def test_an_e_mail_the_shop_refuses_waits_for_a_person_and_the_rest_goes(sandbox_shop, make_sync,
                                                                          sqlite_company_dsn):
    shop, _, _ = sandbox_shop
    dsn = sqlite_company_dsn
    sync = make_sync(dsn)
    customer = register(shop)
    other = register(shop, email="other@example.test")
    sync.sync_customer(customer["id"])
    code = linked_code(dsn, customer["id"])

    edit(dsn, code, email="other@example.test", phone="0900 000000")  # the shop allows one customer per e-mail
    assert sync.sync_account(code) == "updated"
    shop_side = shop.get_customer(customer["id"])
    assert (shop_side["email"], shop_side["billing"]["phone"]) == ("jane@example.test", "0900 000000")
    assert shop.get_customer(other["id"])["email"] == "other@example.test"
    [conflict] = sync.links.conflicts()
    assert (conflict.field, conflict.woo_value, conflict.exchequer_value) == (
        "email", "jane@example.test", "other@example.test")
    # Cleared in Exchequer, the e-mail is not taken from the shop customer either.
    edit(dsn, code, email="")
    sync.sync_account(code)
    assert shop.get_customer(customer["id"])["email"] == "jane@example.test"


def test_what_the_shop_refuses_is_parked_with_its_reason(sandbox_shop, make_sync, sqlite_company_dsn):
    dsn = sqlite_company_dsn
    sync = make_sync(dsn, export_accounts="all")
    target = _accounts(dsn)[0]
    edit(dsn, target.code, email="not-an-address")

    with pytest.raises(PermanentError, match="the shop refused"):
        sync.sync_account(target.code)
    with pytest.raises(PermanentError, match="numeric id"):
        sync.handle_event(shop_event("x"))


def test_one_refused_account_in_a_capture_event_does_not_hold_up_the_others(sandbox_shop, make_sync,
                                                                             sqlite_company_dsn):
    shop, _, _ = sandbox_shop
    dsn = sqlite_company_dsn
    sync = make_sync(dsn, export_accounts="all")
    first, refused, last = _accounts(dsn)[:3]
    edit(dsn, refused.code, email="not-an-address")

    with pytest.raises(PermanentError, match=f"^{refused.code}: .*the shop refused"):
        sync.handle_event(account_event(first.code, refused.code, last.code))
    # The account after the refused one went to the shop all the same.
    emails = {c["email"] for c in shop.list_customers({"role": "all"})}
    assert {first.email.lower(), last.email.lower()} <= emails


def test_an_account_with_the_e_mail_of_a_customer_linked_elsewhere_changes_neither(sandbox_shop, make_sync,
                                                                                   sqlite_company_dsn):
    shop, _, _ = sandbox_shop
    dsn = sqlite_company_dsn
    sync = make_sync(dsn, match_by_email=False, export_accounts="all")
    customer, code = synced(shop, sync, dsn)
    other = next(a for a in _accounts(dsn) if a.code != code)
    edit(dsn, other.code, email="jane@example.test", phone="0600 000000")

    assert sync.sync_account(other.code) == "email_taken"
    assert linked_code(dsn, customer["id"]) == code
    assert shop.get_customer(customer["id"])["billing"]["phone"] == "01904 111111"


def test_a_shop_outage_fails_the_event_for_a_retry_and_agrees_nothing(sandbox_shop, make_sync, sqlite_company_dsn):
    from exsync.woo import WooServerError

    shop, _, _ = sandbox_shop
    dsn = sqlite_company_dsn
    sync = make_sync(dsn)
    customer, code = synced(shop, sync, dsn)
    edit(dsn, code, phone="0700 000000")

    shop.faults.inject(status=503, count=100, method="PUT", route_prefix="customers")
    with pytest.raises(WooServerError) as raised:
        sync.handle_event(account_event(code))
    assert not isinstance(raised.value, PermanentError)
    assert sync.links.get(customer["id"]).snapshot["phone"] == "01904 111111"

    shop.faults.clear()
    assert sync.handle_event(account_event(code)) == {code: "updated"}
    assert shop.get_customer(customer["id"])["billing"]["phone"] == "0700 000000"


def test_a_sync_that_raced_another_of_the_same_customer_is_retried_not_stored(sandbox_shop, make_sync, company_dsn):
    shop, _, _ = sandbox_shop
    sync = make_sync(company_dsn)
    customer = register(shop)
    sync.sync_customer(customer["id"])
    mine, theirs = sync.links.get(customer["id"]), sync.links.get(customer["id"])
    theirs.synced_at += 1
    sync.links.save(theirs)

    mine.synced_at += 2
    mine.snapshot = dict(mine.snapshot, phone="stale")
    with pytest.raises(LinkChangedError):
        sync.links.save(mine)
    assert sync.links.get(customer["id"]).snapshot["phone"] == "01904 111111"
    with pytest.raises(LinkChangedError):
        sync.links.save(Link(woo_id=customer["id"], account_code="OTHER1"))


def test_with_the_sync_off_events_are_dropped_and_counted(sandbox_shop, make_sync, sqlite_company_dsn):
    shop, _, _ = sandbox_shop
    metrics = Recorded()
    sync = make_sync(sqlite_company_dsn, enabled=False)
    sync.metrics = metrics
    customer = register(shop)

    assert sync.handle_event(shop_event(customer["id"], "customer.created")) == {}
    assert linked_code(sqlite_company_dsn, customer["id"]) is None
    assert metrics.counts == {("customer_syncs", (("outcome", "disabled"), ("source", "event"))): 1}


def test_conflicts_waiting_are_a_gauge_read_from_the_table_at_each_scrape(sandbox_shop, make_sync,
                                                                           sqlite_company_dsn):
    shop, _, _ = sandbox_shop
    dsn = sqlite_company_dsn
    registry = prometheus_client.CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry)
    settings = load_settings({"EXSYNC_EXCHEQUER_DSN": dsn, "EXSYNC_WOO_URL": "http://127.0.0.1:1",
                              "EXSYNC_WOO_CONSUMER_KEY": "ck", "EXSYNC_WOO_CONSUMER_SECRET": "cs"})
    # What `exsync consume customers` registers; customers-export does not export it at all.
    build(settings, metrics=metrics).close()
    export_registry = prometheus_client.CollectorRegistry()
    build_export(settings, metrics=PrometheusMetrics(registry=export_registry)).close()
    sync = make_sync(dsn, conflicts={"default": "manual"})
    customer, code = synced(shop, sync, dsn)
    shop.update_customer(customer["id"], {"billing": {"phone": "0800 SHOP"}})
    edit(dsn, code, phone="0800 EXCHEQUER")

    sync.sync_customer(customer["id"])
    assert registry.get_sample_value("exsync_customer_conflicts_waiting") == 1
    assert export_registry.get_sample_value("exsync_customer_conflicts_waiting") is None
    # Resolved by another process (a person at the command line): the next scrape says so, no tick needed.
    make_sync(dsn, conflicts={"default": "manual"}).resolve(customer["id"], "phone", "woo")
    assert registry.get_sample_value("exsync_customer_conflicts_waiting") == 0


class Recorded(Metrics):
    def __init__(self):
        self.counts, self.gauges = {}, {}

    def inc(self, name, amount=1, **labels):
        key = (name, tuple(sorted(labels.items())))
        self.counts[key] = self.counts.get(key, 0) + amount

    def set(self, name, value, **labels):
        self.gauges[name] = value


def test_a_long_name_cut_to_the_column_is_not_a_change_and_the_shop_keeps_it_whole(sandbox_shop, make_sync,
                                                                                 sqlite_company_dsn):
    shop, _, _ = sandbox_shop
    dsn = sqlite_company_dsn
    sync = make_sync(dsn)
    # 38 characters; Exchequer's acContact holds 25 (custsupp_final.xml), and the 25th is a space.
    customer = register(shop, first_name="Bartholomew", last_name="Featherstone Smythe-Hughes",
                        billing={"first_name": "Bartholomew", "last_name": "Featherstone Smythe-Hughes",
                                 "email": "bart@example.test", "phone": "01904 111111"}, email="bart@example.test")

    assert sync.sync_customer(customer["id"]) == "created"
    code = linked_code(dsn, customer["id"])
    assert account(dsn, code).contact == "Bartholomew Featherstone"
    assert sync.sync_customer(customer["id"]) == "unchanged"
    assert shop.get_customer(customer["id"])["last_name"] == "Featherstone Smythe-Hughes"


def test_a_customer_without_a_name_is_not_given_the_placeholder(sandbox_shop, make_sync, sqlite_company_dsn):
    shop, _, _ = sandbox_shop
    dsn = sqlite_company_dsn
    sync = make_sync(dsn)
    customer = shop.create_customer({"email": "anon@example.test"})

    assert sync.sync_customer(customer["id"]) == "created"
    code = linked_code(dsn, customer["id"])
    assert account(dsn, code).contact == f"Web customer {customer['id']}"
    assert (shop.get_customer(customer["id"])["first_name"], shop.get_customer(customer["id"])["last_name"]) == ("", "")
    assert sync.sync_customer(customer["id"]) == "unchanged"
    shop.update_customer(customer["id"], {"first_name": "Ann", "last_name": "Onymous"})
    assert sync.sync_customer(customer["id"]) == "updated"
    assert account(dsn, code).contact == "Ann Onymous"


def test_a_first_link_by_e_mail_keeps_what_exchequer_holds(sandbox_shop, make_sync, sqlite_company_dsn):
    shop, _, _ = sandbox_shop
    dsn = sqlite_company_dsn
    existing = _accounts(dsn)[0]
    customer = register(shop, email=existing.email)  # a later registration, with its own phone and address
    sync = make_sync(dsn)

    assert sync.sync_customer(customer["id"]) == "updated"
    after = account(dsn, existing.code)
    assert (after.phone, after.address, after.contact) == (existing.phone, existing.address, existing.contact)
    assert shop.get_customer(customer["id"])["billing"]["phone"] == existing.phone


def test_address_lines_sync_one_by_one_and_the_country_stays_each_sides(sandbox_shop, make_sync,
                                                                        sqlite_company_dsn):
    shop, _, _ = sandbox_shop
    dsn = sqlite_company_dsn
    sync = make_sync(dsn)
    customer, code = synced(shop, sync, dsn)
    shop.update_customer(customer["id"], {"billing": {"address_1": "2 Mill Lane, Rear Entrance by the Old Grain Store"}})
    sync.sync_customer(customer["id"])  # Exchequer holds the line cut to 30 characters

    before = account(dsn, code).address
    edit(dsn, code, address=(before[0], "Walmgate", before[2], before[3], "United Kingdom"))
    assert sync.sync_account(code) == "updated"
    billing = shop.get_customer(customer["id"])["billing"]
    assert (billing["address_1"], billing["address_2"], billing["country"]) == (
        "2 Mill Lane, Rear Entrance by the Old Grain Store", "Walmgate", "GB")
    assert sync.sync_account(code) == "unchanged"


def test_shop_users_outside_the_customer_roles_are_never_linked(sandbox_shop, make_sync, sqlite_company_dsn):
    shop, _, _ = sandbox_shop
    dsn = sqlite_company_dsn
    sync = make_sync(dsn, export_accounts="all")
    target = _accounts(dsn)[0]
    edit(dsn, target.code, email="admin@example.test")  # the shop owner's own address

    assert sync.sync_account(target.code) == "not_a_customer"
    assert shop.get_customer(1)["role"] == "administrator"
    assert linked_code(dsn, 1) is None
    assert sync.sync_customer(1) == "not_a_customer"


def test_a_customer_another_worker_is_syncing_is_retried_later(sandbox_shop, make_sync, sqlite_company_dsn):
    shop, _, _ = sandbox_shop
    now = [1000.0]
    sync = make_sync(sqlite_company_dsn, clock=lambda: now[0])
    customer = register(shop)
    assert sync.links.claim(customer["id"], holder="another worker", now=now[0], seconds=60)

    with pytest.raises(CustomerBusyError):
        sync.sync_customer(customer["id"])
    assert linked_code(sqlite_company_dsn, customer["id"]) is None
    now[0] += 61  # the other worker's lease ran out (it died mid-sync)
    assert sync.sync_customer(customer["id"]) == "created"


def test_a_wholesale_customer_s_e_mail_change_waits_for_a_person_and_the_rest_goes(sandbox_shop, make_sync,
                                                                                  sqlite_company_dsn):
    shop, _, _ = sandbox_shop
    dsn = sqlite_company_dsn
    sync = make_sync(dsn)
    customer = register(shop)
    shop.set_user_roles(customer["id"], ["wholesale_customer"])
    sync.sync_customer(customer["id"])
    code = linked_code(dsn, customer["id"])
    assert account(dsn, code).price_band == "B"

    edit(dsn, code, email="jane@newmail.example", phone="0910 000000")
    assert sync.sync_account(code) == "updated"
    shop_side = shop.get_customer(customer["id"])
    # WooCommerce 9.5+ refuses REST e-mail changes for roles other than customer and subscriber.
    assert (shop_side["email"], shop_side["billing"]["phone"]) == ("jane@example.test", "0910 000000")
    assert [(c.field, c.exchequer_value) for c in sync.links.conflicts()] == [("email", "jane@newmail.example")]
    assert sync.resolve(customer["id"], "email", "woo") == "updated"
    assert account(dsn, code).email == "jane@example.test"


def test_a_customer_made_from_an_account_is_linked_to_it_by_the_shop_side_too(sandbox_shop, make_sync,
                                                                              sqlite_company_dsn):
    shop, _, _ = sandbox_shop
    dsn = sqlite_company_dsn
    source = _accounts(dsn)[0]
    edit(dsn, source.code, price_band="B")
    accounts_before = len(_accounts(dsn))
    exporter = make_sync(dsn, export_accounts="all", conflicts={"default": "woo"})
    importer = make_sync(dsn, match_by_email=False, conflicts={"default": "woo"})
    original = exporter.client.create_customer
    woo_ids = []

    def create_then_webhook(changes):
        # The shop's customer.created webhook is handled before the export links what it made.
        customer = original(changes)
        woo_ids.append(customer["id"])
        assert importer.sync_customer(customer["id"]) == "created"
        return customer

    exporter.client.create_customer = create_then_webhook
    try:
        exporter.sync_account(source.code)
    finally:
        exporter.client.create_customer = original
    assert linked_code(dsn, woo_ids[0]) == source.code
    assert len(_accounts(dsn)) == accounts_before  # no second account for the same customer
    # Made from the account, the customer starts agreed on what was sent: the band is not lost
    # to the shop's "not wholesale" whatever the policy, and the role goes to the shop.
    assert account(dsn, source.code).price_band == "B"
    assert shop.get_customer(woo_ids[0])["role"] == "wholesale_customer"


def test_an_exported_wholesale_account_keeps_its_band_whatever_the_policy(sandbox_shop, make_sync,
                                                                          sqlite_company_dsn):
    shop, _, _ = sandbox_shop
    dsn = sqlite_company_dsn
    target = _accounts(dsn)[0]
    edit(dsn, target.code, price_band="B")
    sync = make_sync(dsn, export_accounts="all", conflicts={"default": "woo"})

    assert sync.sync_account(target.code) == "created"
    [made] = [c for c in shop.list_customers({"role": "all"}) if c["email"] == target.email.lower()]
    assert made["role"] == "wholesale_customer"
    assert account(dsn, target.code).price_band == "B"


def test_a_first_link_never_takes_wholesale_away_and_never_overwrites_a_login_e_mail(sandbox_shop, make_sync,
                                                                                     sqlite_company_dsn):
    shop, _, _ = sandbox_shop
    dsn = sqlite_company_dsn
    existing = _accounts(dsn)[0]
    edit(dsn, existing.code, price_band="A")
    customer = register(shop, email="login@example.test")
    shop.set_user_roles(customer["id"], ["wholesale_customer"])
    with connect(dsn) as database:  # linked by an order's billing e-mail, say: the login e-mail differs
        SqlWriteBackend(database=database).link_account(external_key=customer_key(customer["id"]), code=existing.code)
    sync = make_sync(dsn)

    assert sync.sync_customer(customer["id"]) == "updated"
    assert account(dsn, existing.code).price_band == "B"
    assert shop.get_customer(customer["id"])["email"] == "login@example.test"
    assert account(dsn, existing.code).email == existing.email
    assert [c.field for c in sync.links.conflicts()] == ["email"]


@pytest.mark.parametrize("released", [False, True], ids=["still held", "taken and released"])
def test_a_lease_lost_mid_sync_writes_nothing(sandbox_shop, make_sync, sqlite_company_dsn, released):
    shop, client, _ = sandbox_shop
    dsn = sqlite_company_dsn
    now = [1000.0]
    sync = make_sync(dsn, clock=lambda: now[0])
    customer, code = synced(shop, sync, dsn)
    shop.update_customer(customer["id"], {"billing": {"phone": "0920 SHOP"}})
    original = client.get_customer

    def slow_read(woo_id):
        # The read outlasts the lease; another worker claims the customer meanwhile (and may have
        # synced and released it since: the lease is still not ours to renew).
        now[0] += sync.claim_seconds + 1
        assert sync.links.claim(woo_id, holder="another worker", now=now[0], seconds=60)
        if released:
            sync.links.release(woo_id, holder="another worker")
        return original(woo_id)

    client.get_customer = slow_read
    try:
        with pytest.raises(CustomerBusyError):
            sync.sync_customer(customer["id"])
    finally:
        client.get_customer = original
    assert account(dsn, code).phone == "01904 111111"


def test_a_404_that_is_not_the_shop_s_no_such_customer_is_retried_not_a_deletion(sandbox_shop, make_sync,
                                                                                 sqlite_company_dsn):
    shop, _, _ = sandbox_shop
    dsn = sqlite_company_dsn
    sync = make_sync(dsn)
    customer = register(shop)
    sync.sync_customer(customer["id"])

    shop.faults.inject(status=404, count=1, method="GET", route_prefix="customers")  # a security plugin's page
    with pytest.raises(Exception) as raised:
        sync.sync_customer(customer["id"])
    assert not isinstance(raised.value, PermanentError)
    assert sync.links.get(customer["id"]).state == "linked"


def test_an_account_busy_elsewhere_retries_its_event_after_the_others_are_synced(sandbox_shop, make_sync,
                                                                                 sqlite_company_dsn):
    shop, _, _ = sandbox_shop
    dsn = sqlite_company_dsn
    now = [1000.0]
    sync = make_sync(dsn, clock=lambda: now[0])
    customer, code = synced(shop, sync, dsn)
    other = register(shop, email="other@example.test")
    sync.sync_customer(other["id"])
    other_code = linked_code(dsn, other["id"])
    edit(dsn, code, phone="0930 000000")
    edit(dsn, other_code, phone="0940 000000")
    assert sync.links.claim(customer["id"], holder="another worker", now=now[0], seconds=60)

    with pytest.raises(CustomerBusyError, match=code):
        sync.handle_event(account_event(code, other_code))
    assert shop.get_customer(other["id"])["billing"]["phone"] == "0940 000000"
    sync.links.release(customer["id"], holder="another worker")
    assert sync.handle_event(account_event(code, other_code)) == {code: "updated", other_code: "unchanged"}


def test_a_customer_who_registers_again_after_a_deletion_gets_the_same_account(sandbox_shop, make_sync,
                                                                               sqlite_company_dsn):
    shop, _, _ = sandbox_shop
    dsn = sqlite_company_dsn
    sync = make_sync(dsn)
    first = register(shop)
    sync.sync_customer(first["id"])
    code = linked_code(dsn, first["id"])
    shop.delete_customer(first["id"], force=True)
    sync.handle_event(shop_event(first["id"], "customer.deleted"))

    again = register(shop)
    assert sync.sync_customer(again["id"]) in ("updated", "unchanged")
    assert linked_code(dsn, again["id"]) == code
    # And the account's edits reach the customer who came back, not the deleted one.
    edit(dsn, code, phone="0960 000000")
    assert sync.sync_account(code) == "updated"
    assert shop.get_customer(again["id"])["billing"]["phone"] == "0960 000000"
