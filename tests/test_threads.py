import threading

from exsync.threads import PerThread


def test_each_thread_gets_its_own_resource_and_all_are_closed():
    closed = []
    made = iter(range(100))
    per_thread = PerThread(make=lambda: next(made), close=closed.append)
    seen = {}

    def use(name):
        seen[name] = (per_thread.get(), per_thread.get())

    threads = [threading.Thread(target=use, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(first == second for first, second in seen.values())
    assert sorted(first for first, _ in seen.values()) == [0, 1, 2]
    per_thread.close()
    assert sorted(closed) == [0, 1, 2]


def test_a_discarded_resource_is_closed_once_and_replaced():
    closed = []
    made = iter(range(100))
    per_thread = PerThread(make=lambda: next(made), close=closed.append)
    assert per_thread.get() == 0
    per_thread.discard()
    assert closed == [0]
    assert per_thread.get() == 1
    per_thread.close()
    assert closed == [0, 1]
