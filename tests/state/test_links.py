"""The customer sync's store on SQLite and PostgreSQL: links, their lease, conflicts, decisions."""

import pytest

from exsync.state import LinkChangedError
from exsync.state.links import LINKED, SHOP_DELETED, Link, LinkStore


def test_a_link_is_saved_only_over_the_version_it_was_read_at(state_database):
    links = LinkStore(database=state_database)
    assert links.get(5) is None
    assert links.claim(5, holder="me", now=100.0, seconds=60)
    assert links.get(5) is None  # a row holding only the lease is no link yet
    links.save(Link(woo_id=5, account_code="JONES01", snapshot={"phone": "1"}))
    mine, theirs = links.get(5), links.get(5)
    theirs.snapshot = {"phone": "2"}
    links.save(theirs)
    with pytest.raises(LinkChangedError):
        links.save(mine)
    assert (links.get(5).snapshot, links.get(5).version) == ({"phone": "2"}, 2)
    assert links.by_account("JONES01").woo_id == 5


def test_an_account_is_linked_to_its_live_customer_first(state_database):
    links = LinkStore(database=state_database)
    for woo_id, state in ((8, SHOP_DELETED), (6, LINKED)):
        links.claim(woo_id, holder="me", now=100.0, seconds=60)
        links.save(Link(woo_id=woo_id, account_code="SMITH01", state=state))
    assert links.by_account("SMITH01").woo_id == 6


def test_the_customer_lease_passes_only_when_it_runs_out_or_is_released(state_database):
    links = LinkStore(database=state_database)
    assert links.claim(7, holder="one", now=100.0, seconds=60)
    assert not links.claim(7, holder="two", now=130.0, seconds=60)
    assert links.renew(7, holder="one", now=150.0, seconds=60)
    assert not links.claim(7, holder="two", now=200.0, seconds=60)
    links.release(7, holder="one")
    assert links.claim(7, holder="two", now=200.0, seconds=60)
    assert not links.renew(7, holder="one", now=201.0, seconds=60)


def test_conflicts_are_replaced_per_customer_and_decisions_all_kept(state_database):
    links = LinkStore(database=state_database)
    links.record_conflicts(5, "JONES01", [("phone", "1", "2", "0"), ("email", "a@x", "b@x", None)], now=100.0)
    links.record_conflicts(6, "SMITH01", [("phone", "3", "4", "0")], now=100.0)
    links.record_conflicts(5, "JONES01", [("phone", "1", "2", "0")], now=101.0)
    assert [(c.woo_id, c.field, c.woo_value, c.noticed_at) for c in links.conflicts()] == [
        (5, "phone", "1", 101.0), (6, "phone", "3", 100.0)]
    assert links.waiting() == 2
    links.record_decisions(5, "JONES01", [("phone", "1", "2", "0", "woo", "woo"),
                                          ("city", "x" * 2000, "York", "", "newest", "exchequer")], now=200.0)
    decisions = links.decisions(5)
    assert [(d.field, d.winner) for d in decisions] == [("city", "exchequer"), ("phone", "woo")]
    assert decisions[0].woo_value == '"' + "x" * 999  # cut to its column, shown as stored
    assert links.decisions(6) == []
