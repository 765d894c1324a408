"""The part of the fault scenarios that runs in `make test`, small enough for CI: repeated concurrent
deliveries, every order of a lifecycle's states, and a refused broker, all on one pipeline (the real
receiver behind a broker proxy, the real orders consumer, a company on PostgreSQL) started once for
the module. `make chaos` runs the same scenarios at full scale (test_deliveries.py, test_outages.py).
"""

import pytest

from tests.reliability.support import stage
from tests.reliability.test_deliveries import duplicate_deliveries, every_permutation, failure, reordered_lifecycles
from tests.reliability.test_outages import Phase, broker_outage
from tests.support.database import fresh_pg_database


@pytest.fixture(scope="module")
def small_stage(test_vhost, pg_server, tmp_path_factory):
    test_vhost.empty()
    directory = tmp_path_factory.mktemp("reliability")
    try:
        with fresh_pg_database(pg_server) as dsn, stage(amqp_url=test_vhost.url, dsn=dsn, directory=directory,
                                                        broker_proxy=True) as running:
            yield running
    finally:
        test_vhost.empty()


@pytest.mark.slow
def test_repeated_concurrent_deliveries_make_one_document_per_order(small_stage):
    outcome = duplicate_deliveries(small_stage, orders=40, copies=3, first_order_id=710001, timeout_seconds=120)
    assert outcome.answers == {200: 120}
    assert outcome.count.wrong == 0, failure(outcome)
    assert outcome.count.imported == 40


@pytest.mark.slow
def test_every_order_of_a_lifecycles_states_makes_one_document(small_stage):
    outcome = reordered_lifecycles(small_stage, permutations=every_permutation(), first_order_id=720001,
                                   timeout_seconds=120)
    assert set(outcome.answers) == {200}
    assert outcome.count.wrong == 0, failure(outcome)


@pytest.mark.slow
def test_deliveries_answered_200_around_a_refused_broker_are_all_imported(small_stage):
    figures, count = broker_outage(small_stage, phases=[Phase("refuse", 4)], per_second=10, gap_seconds=3,
                                   first_order_id=730001)
    assert count.missing == [] and count.wrong == 0, figures
    assert figures["refuse"]["recovery_seconds"] is not None, "deliveries are stored again after the outage"
    assert figures["answers"].get("200", 0) >= 40, figures
