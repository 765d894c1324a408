"""Account capture: new and changed customer accounts published in chunks, recorded only after confirm."""

import dataclasses

import pytest

from exsync import wiring
from exsync.bus import Publisher, PublishNotConfirmed, declare_topology
from exsync.config import Settings
from exsync.exchequer import (
    AccountCapture,
    ExchequerReader,
    account_changed_at,
    account_fingerprint,
    connect,
    edit_account,
    init_schema,
    recorded_account,
    seed,
)
from exsync.schemas.config import validate_config
from exsync.wiring import build_capture
from tests.support.products import CountingMetrics, demo_company
from tests.support.rabbit import bind_probe, queue_depth, read_messages

COMPANY = "ZZZZ01"
ACCOUNTS = 12


class FakePublisher:
    """Keeps what it was given; `fail_after` N publishes it raises as an unconfirmed publish does."""

    def __init__(self):
        self.events = []
        self.fail_after = None

    def publish(self, *, exchange, routing_key, event, headers=None):
        if self.fail_after is not None and len(self.events) >= self.fail_after:
            raise PublishNotConfirmed("nacked")
        self.events.append((exchange, routing_key, event))

    def codes(self):
        return [account["code"] for _, _, event in self.events for account in event["data"]["accounts"]]


@pytest.fixture
def company(database):
    """A company of ACCOUNTS seeded accounts, the first of them turned into a supplier:
    (the customers' codes, the supplier's code)."""
    seed(database, items=2, locations=1, boms=0, accounts=ACCOUNTS)
    codes = [account.code for account in ExchequerReader(database=database).iter_accounts()]
    supplier, customers = codes[0], codes[1:]
    with database.transaction() as cursor:
        cursor.run("UPDATE {accounts} SET {accounts.cust_supp} = 'S' WHERE {accounts.code} = ?", (supplier,))
    return customers, supplier


def _capture(database, publisher, **kwargs):
    return AccountCapture(database=database, state_database=database, publisher=publisher, company=COMPANY,
                          **kwargs)


def _recorded_codes(database):
    with database.transaction(write=False) as cursor:
        return {row[0] for row in cursor.execute(
            f'SELECT "code" FROM {database.names.state_table("account_capture")} WHERE "company" = ?',
            (COMPANY,)).fetchall()}


def test_the_first_run_publishes_every_customer_and_no_supplier_and_a_rerun_nothing(database, company):
    customers, supplier = company
    publisher, metrics = FakePublisher(), CountingMetrics()
    capture = _capture(database, publisher, metrics=metrics)

    assert capture.run_once() == len(customers) == ACCOUNTS - 1
    assert sorted(publisher.codes()) == sorted(customers) and supplier not in publisher.codes()
    [(exchange, routing_key, event)] = publisher.events
    assert (exchange, routing_key) == ("exchequer", "account.changed")
    assert (event["type"], event["source"], event["subject"]) == (
        "exchequer.account.changed", "exsync/exchequer/capture", COMPANY)
    assert event["data"]["company"] == COMPANY
    seen = {account["code"]: account["seen_at"] for account in event["data"]["accounts"]}
    assert all(isinstance(seen_at, float) for seen_at in seen.values())
    assert {code: account_changed_at(database, COMPANY, code) for code in customers} == seen
    assert account_changed_at(database, COMPANY, supplier) is None
    assert metrics.count("capture_account_changes_published") == len(customers)

    assert capture.run_once() == 0
    assert len(publisher.events) == 1
    assert metrics.count("capture_account_changes_published") == len(customers)


def test_an_edited_account_alone_is_published_and_its_changed_at_moves(database, company):
    customers, _ = company
    publisher = FakePublisher()
    capture = _capture(database, publisher)
    capture.run_once()
    edited, other = customers[3], customers[4]
    before = {code: account_changed_at(database, COMPANY, code) for code in (edited, other)}

    edit_account(database, edited, email="new.address@example.com")
    publisher.events.clear()
    assert capture.run_once() == 1
    [(_, _, event)] = publisher.events
    [entry] = event["data"]["accounts"]
    assert entry["code"] == edited
    assert account_changed_at(database, COMPANY, edited) == entry["seen_at"] >= before[edited]
    assert account_changed_at(database, COMPANY, other) == before[other]

    reader = ExchequerReader(database=database)
    email = reader.account(edited).email
    edit_account(database, edited, email=f"  {email} ")  # padding is not a change the shop would see
    with database.transaction() as cursor:  # nor is a field the shop does not sync
        cursor.run("UPDATE {accounts} SET {accounts.user_def_1} = 'X' WHERE {accounts.code} = ?", (other,))
    publisher.events.clear()
    assert capture.run_once() == 0 and publisher.events == []


def test_changes_travel_in_chunks_of_event_items(database, company):
    customers, _ = company
    publisher, metrics = FakePublisher(), CountingMetrics()
    assert _capture(database, publisher, metrics=metrics, event_items=4).run_once() == len(customers)
    assert [len(event["data"]["accounts"]) for _, _, event in publisher.events] == [4, 4, 3]
    assert sorted(publisher.codes()) == sorted(customers)
    assert len(set(publisher.codes())) == len(customers)
    assert metrics.count("capture_account_changes_published") == len(customers)


def test_a_failed_publish_records_nothing_of_its_chunk_so_the_next_run_sends_it_again(database, company):
    customers, _ = company
    publisher, metrics = FakePublisher(), CountingMetrics()
    capture = _capture(database, publisher, metrics=metrics, event_items=5)
    publisher.fail_after = 1
    with pytest.raises(PublishNotConfirmed):
        capture.run_once()
    confirmed = publisher.codes()
    assert len(confirmed) == 5
    assert _recorded_codes(database) == set(confirmed)
    assert metrics.count("capture_account_changes_published") == 5

    publisher.fail_after = None
    publisher.events.clear()
    assert capture.run_once() == len(customers) - 5
    assert sorted(publisher.codes()) == sorted(set(customers) - set(confirmed))
    assert _recorded_codes(database) == set(customers)

    edit_account(database, customers[0], phone="0100 000000")
    publisher.events.clear()
    publisher.fail_after = 0
    with pytest.raises(PublishNotConfirmed):
        capture.run_once()
    publisher.fail_after = None
    assert capture.run_once() == 1 and publisher.codes() == [customers[0]]


def test_a_deleted_account_or_one_turned_supplier_leaves_the_state_unpublished(database, company):
    customers, _ = company
    publisher = FakePublisher()
    capture = _capture(database, publisher)
    capture.run_once()
    deleted, turned = customers[0], customers[1]
    with database.transaction() as cursor:
        cursor.run("DELETE FROM {accounts} WHERE {accounts.code} = ?", (deleted,))
        cursor.run("UPDATE {accounts} SET {accounts.cust_supp} = 'S' WHERE {accounts.code} = ?", (turned,))

    publisher.events.clear()
    assert capture.run_once() == 0 and publisher.events == []
    assert _recorded_codes(database) == set(customers) - {deleted, turned}
    assert recorded_account(database, COMPANY, deleted) is None
    assert account_changed_at(database, COMPANY, turned) is None


def test_account_fingerprint_matches_what_was_recorded_and_sees_synced_fields_only(database, company):
    customers, _ = company
    capture = _capture(database, FakePublisher())
    capture.run_once()
    reader = ExchequerReader(database=database)
    code = customers[2]
    account = reader.account(code)

    assert capture.recorded(code).fingerprint == account_fingerprint(account)
    assert recorded_account(database, COMPANY, code) == capture.recorded(code)
    assert capture.recorded("NOSUCH") is None
    assert account_fingerprint(dataclasses.replace(account, contact=f" {account.contact}  ",
                                                   user_defs=("anything",))) == account_fingerprint(account)
    for change in ({"company": "Other Ltd"}, {"contact": "Someone Else"}, {"post_code": "ZZ1 1ZZ"},
                   {"email": "x@example.com"}, {"phone": "0"}, {"price_band": "H"},
                   {"address": ("1 Other Road",) + tuple(account.address[1:])},
                   {"address": tuple(account.address[:4]) + ("Changed",)}):
        assert account_fingerprint(dataclasses.replace(account, **change)) != account_fingerprint(account), change

    edit_account(database, code, post_code="ZZ9 9ZZ")
    assert account_fingerprint(reader.account(code)) != capture.recorded(code).fingerprint


@pytest.mark.parametrize("enabled", [False, True])
def test_build_capture_runs_the_account_step_only_when_customers_are_enabled(tmp_path, enabled):
    dsn = demo_company(tmp_path / "exchequer.db", accounts=5)
    publisher = FakePublisher()
    config = validate_config({"customers": {"enabled": enabled, "event_items": 2}})[0]
    capture, close = build_capture(Settings(exchequer_dsn=dsn, state_dsn=dsn, config=config), publisher=publisher)
    try:
        capture.run_once()
    finally:
        close()
    account_events = [event for _, key, event in publisher.events if key == "account.changed"]
    if enabled:
        assert [len(event["data"]["accounts"]) for event in account_events] == [2, 2, 1]
    else:
        assert account_events == []
    assert {key for _, key, _ in publisher.events} >= {"product.changed", "stock.changed"}


def test_changes_reach_the_exchequer_exchange_and_the_customers_export_queue(tmp_path, amqp_url):
    topology = wiring.topology()
    declare_topology(amqp_url, topology)
    probe = bind_probe(amqp_url, exchange="exchequer", routing_key="account.changed")
    with connect(f"sqlite:///{tmp_path}/exchequer.db") as database:
        init_schema(database)
        seed(database, items=2, locations=1, boms=0, accounts=7)
        codes = [account.code for account in ExchequerReader(database=database).iter_accounts()]
        with Publisher(url=amqp_url, topology=topology) as publisher:
            assert _capture(database, publisher, event_items=3).run_once() == 7
            assert _capture(database, publisher, event_items=3).run_once() == 0

    messages = read_messages(amqp_url, probe, count=3, timeout_seconds=10)
    assert [len(body["data"]["accounts"]) for body, _ in messages] == [3, 3, 1]
    assert sorted(account["code"] for body, _ in messages for account in body["data"]["accounts"]) == sorted(codes)
    assert {(body["type"], body["subject"]) for body, _ in messages} == {("exchequer.account.changed", COMPANY)}
    assert all(properties.delivery_mode == 2 for _, properties in messages)
    assert queue_depth(amqp_url, "customers.export") == 3
