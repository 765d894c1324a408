"""Waiting in tests for something another process or thread does."""

from collections.abc import Callable
from typing import TypeVar

import pytest

from exsync import netutil

__all__ = ["wait_until", "wait_for"]

T = TypeVar("T")

# Tests poll more often than the demo: a test waits for one thing at a time and wants it soon.
TEST_WAIT_SECONDS = 15.0
TEST_POLL_INTERVAL_SECONDS = 0.05


def wait_until(predicate: Callable[[], T], *, timeout_seconds: float = TEST_WAIT_SECONDS,
               interval_seconds: float = TEST_POLL_INTERVAL_SECONDS) -> T | None:
    """exsync.netutil.wait_until with the tests' defaults: the first truthy value, or None at the deadline."""
    return netutil.wait_until(predicate, timeout_seconds, interval_seconds)


def wait_for(condition: Callable[[], T], what: str, *, timeout_seconds: float = 30.0) -> T:
    """Like wait_until, but the test fails, naming `what`, when the deadline passes."""
    value = wait_until(condition, timeout_seconds=timeout_seconds)
    if not value:
        pytest.fail(f"gave up waiting for {what}")
    return value
