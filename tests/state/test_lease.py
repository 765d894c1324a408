"""One lease over a holder and an expiry: claim, renew, release."""

from exsync.state import Lease, StateColumn, StateTable, create_state_tables, holder_id

JOBS = StateTable(name="jobs", key=("job",), columns={
    "job": StateColumn("job", "str:40"),
    "holder": StateColumn("holder", "str:100"),
    "lease_expires": StateColumn("lease_expires", "float"),
    "done": StateColumn("done", "int"),
})


def lease(database):
    create_state_tables(database, (JOBS,))
    return Lease(database=database, table=JOBS)


def test_one_holder_at_a_time_until_the_lease_runs_out(state_database):
    jobs = lease(state_database)
    assert jobs.claim(("a",), holder="one", now=100.0, seconds=60)
    assert not jobs.claim(("a",), holder="two", now=159.0, seconds=60)
    assert jobs.claim(("a",), holder="one", now=159.0, seconds=60)  # its own: extended to 219
    assert not jobs.claim(("a",), holder="two", now=218.0, seconds=60)
    assert jobs.claim(("a",), holder="two", now=219.0, seconds=60)  # ran out: taken over
    assert jobs.claim(("b",), holder="one", now=219.0, seconds=60)  # another row: its own lease


def test_renew_keeps_the_holders_own_lease_until_another_claims_it(state_database):
    jobs = lease(state_database)
    assert jobs.claim(("a",), holder="one", now=100.0, seconds=60)
    assert jobs.renew(("a",), holder="one", now=500.0, seconds=60)  # ran out, nobody took it
    assert not jobs.renew(("a",), holder="two", now=500.0, seconds=60)
    assert jobs.claim(("a",), holder="two", now=600.0, seconds=60)
    jobs.release(("a",), holder="two")
    assert not jobs.renew(("a",), holder="one", now=601.0, seconds=60)  # two may have written meanwhile


def test_release_frees_the_row_at_once_and_keeps_its_other_columns(state_database):
    jobs = lease(state_database)
    assert jobs.claim(("a",), holder="one", now=100.0, seconds=60)
    table = JOBS.sql_name(state_database)
    with state_database.transaction() as cursor:
        cursor.execute(f'UPDATE {table} SET "done" = 7 WHERE "job" = ?', ("a",))
    jobs.release(("a",), holder="two")  # not the holder: nothing
    assert not jobs.claim(("a",), holder="two", now=101.0, seconds=60)
    jobs.release(("a",), holder="one")
    assert jobs.claim(("a",), holder="two", now=101.0, seconds=60)
    with state_database.transaction(write=False) as cursor:
        assert int(cursor.execute(f'SELECT "done" FROM {table}').fetchone()[0]) == 7


def test_a_held_lease_uses_its_clock_and_one_holder_id_per_process(state_database):
    now = [1000.0]
    held = lease(state_database).held(("a",), holder=holder_id(), seconds=30, clock=lambda: now[0])
    other = lease(state_database).held(("a",), holder=holder_id(), seconds=30, clock=lambda: now[0])
    assert held.holder != other.holder
    assert held.claim() and not other.claim()
    now[0] += 31
    assert other.claim() and not held.renew()
    other.release()
    assert held.claim()
