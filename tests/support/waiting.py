"""Waiting in tests for something another process or thread does."""

import time

import pytest

__all__ = ["wait_until", "wait_for"]


def wait_until(predicate, *, timeout_seconds=15.0, interval_seconds=0.05):
    """Polls `predicate` until it returns something true, and returns that; None at the deadline."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval_seconds)


def wait_for(condition, what, *, timeout_seconds=30.0):
    """Like wait_until, but the test fails, naming `what`, when the deadline passes."""
    value = wait_until(condition, timeout_seconds=timeout_seconds)
    if not value:
        pytest.fail(f"gave up waiting for {what}")
    return value
