"""Ports and polling: a free local port, whether something answers on one, and waiting for a condition.

One implementation for the demo (production code, hence here), the benchmarks and the tests, which
start real servers and processes and must wait for them rather than sleep a guessed time.
"""

import socket
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = [
    "DEFAULT_CONNECT_SECONDS",
    "DEFAULT_POLL_INTERVAL_SECONDS",
    "DEFAULT_PORT_POLL_INTERVAL_SECONDS",
    "DEFAULT_PORT_WAIT_SECONDS",
    "DEFAULT_WAIT_SECONDS",
    "LOCALHOST",
    "free_port",
    "port_answers",
    "wait_for_port",
    "wait_until",
]

T = TypeVar("T")

LOCALHOST = "127.0.0.1"
DEFAULT_WAIT_SECONDS = 20.0
DEFAULT_POLL_INTERVAL_SECONDS = 0.1
DEFAULT_PORT_WAIT_SECONDS = 30.0
DEFAULT_PORT_POLL_INTERVAL_SECONDS = 0.05
DEFAULT_CONNECT_SECONDS = 1.0
# While waiting for a local listener: it accepts in microseconds, so a longer probe only delays the next one.
PORT_PROBE_SECONDS = 0.5


def free_port(host: str = LOCALHOST) -> int:
    """A port nothing listens on right now (the kernel's pick), for a server a test or the demo starts."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_answers(host: str, port: int, timeout_seconds: float = DEFAULT_CONNECT_SECONDS) -> bool:
    """True when a TCP connection to host:port opens within `timeout_seconds`."""
    try:
        with socket.create_connection((host, port), timeout=timeout_seconds):
            return True
    except OSError:
        return False


def wait_until(predicate: Callable[[], T], timeout_seconds: float = DEFAULT_WAIT_SECONDS,
               interval_seconds: float = DEFAULT_POLL_INTERVAL_SECONDS) -> T | None:
    """Polls `predicate` until it returns something true, and returns that; None at the deadline.

    The predicate is asked once more when the deadline has passed, so a condition met during the
    last sleep still counts.
    """
    deadline = time.monotonic() + timeout_seconds
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval_seconds)


def wait_for_port(host: str, port: int, timeout_seconds: float = DEFAULT_PORT_WAIT_SECONDS) -> None:
    """Returns once something accepts connections on host:port; TimeoutError after `timeout_seconds`."""
    if not wait_until(lambda: port_answers(host, port, PORT_PROBE_SECONDS), timeout_seconds,
                      DEFAULT_PORT_POLL_INTERVAL_SECONDS):
        raise TimeoutError(f"nothing answered on {host}:{port} within {timeout_seconds} s")
