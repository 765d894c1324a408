"""What the demo prints with and runs beside it: its narration, its exsync processes, and a queue
of its own that shows what went over the bus (exsync.demo tells the story)."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pika

from exsync.bus import Topology

__all__ = ["DEMO_DIR", "PROBE_QUEUE", "Observer", "exsync_process", "expect", "purge", "say", "step"]

DEMO_DIR = os.path.join("var", "demo")
PROBE_QUEUE = "demo.observer"
T = TypeVar("T")


def say(text: str = "") -> None:
    print(text, flush=True)


def step(title: str) -> None:
    say()
    say(f"== {title}")


def expect(value: T | None, what: str) -> T:
    """`value`, or a clear stop when what the demo waited for did not happen."""
    if not value:
        raise RuntimeError(f"{what} did not happen in time; the logs are in {DEMO_DIR}/")
    return value


@contextlib.contextmanager
def exsync_process(args: list[str], *, env: dict[str, str], log_path: str) -> Iterator[subprocess.Popen]:
    """`exsync ARGS` as its own process, as it runs in production, output to `log_path`; stopped
    with SIGTERM (then killed after 30 s) when the block ends."""
    log = open(log_path, "wb")
    process = subprocess.Popen([sys.executable, "-m", "exsync.cli", *args], env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


class Observer:
    """A queue of the demo's own bound to every event, to show what went over the bus."""

    def __init__(self, url: str) -> None:
        self.url = url
        with self._channel() as channel:
            channel.queue_declare(PROBE_QUEUE, durable=False)
            channel.queue_purge(PROBE_QUEUE)
            for exchange in ("woo", "exchequer"):
                channel.queue_bind(PROBE_QUEUE, exchange, routing_key="#")

    @contextlib.contextmanager
    def _channel(self) -> Iterator[Any]:
        connection = pika.BlockingConnection(pika.URLParameters(self.url))
        try:
            yield connection.channel()
        finally:
            connection.close()

    def take(self, *, count: int | None = None, timeout_seconds: float = 15,
             where: Callable[[str], bool] = lambda key: True) -> list[tuple[str, str, dict]]:
        """Events whose routing key passes `where`: `count` of them, or all that come within the timeout."""
        events: list[tuple[str, str, dict]] = []
        deadline = time.monotonic() + timeout_seconds
        with self._channel() as channel:
            while (count is None or len(events) < count) and time.monotonic() < deadline:
                method, _, body = channel.basic_get(PROBE_QUEUE, auto_ack=True)
                if method is None:
                    time.sleep(0.05)
                elif where(method.routing_key):
                    events.append((method.exchange, method.routing_key, json.loads(body)))
        return events

    def drain(self) -> None:
        with self._channel() as channel:
            channel.queue_purge(PROBE_QUEUE)

    def close(self) -> None:
        with self._channel() as channel:
            channel.queue_delete(PROBE_QUEUE)


def purge(url: str, topology: Topology) -> None:
    """Empties the queues a previous demo run may have left messages on, so this run shows its own."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    for queue in topology.all_queue_names():
        channel.queue_purge(queue)
    connection.close()
