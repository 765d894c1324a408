"""The token bucket, on a fake clock so no test waits."""

from exsync.woo import TokenBucket


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def test_bursts_then_paces_at_the_rate():
    clock = FakeClock()
    bucket = TokenBucket(rate_per_second=4, burst=2, clock=clock, sleep=clock.sleep)
    waits = [bucket.acquire() for _ in range(6)]
    assert waits[:2] == [0.0, 0.0]
    assert all(abs(w - 0.25) < 1e-9 for w in waits[2:])
    assert abs(clock.now - 1.0) < 1e-9


def test_idle_time_refills_up_to_the_burst_only():
    clock = FakeClock()
    bucket = TokenBucket(rate_per_second=10, burst=3, clock=clock, sleep=clock.sleep)
    clock.now = 100.0
    assert [bucket.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.acquire() > 0
