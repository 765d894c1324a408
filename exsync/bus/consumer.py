"""The consume loop: one queue, one handler, ack only after the handler's effects are committed.

The transaction boundary lives here: a handler commits its own effects and returns; only then is
the message acknowledged. A handler that raises sends the message to the next retry queue (or,
after the last attempt, to `<queue>.dead` with the reason in its headers) and that publish is
confirmed before the original is acknowledged, so a failure never loses a message.
"""

import collections
import concurrent.futures
import dataclasses
import datetime
import json
import logging
import signal
import threading
import time

import tenacity

from exsync.bus.connection import open_connection
from exsync.bus.errors import BrokerUnavailable, PermanentError
from exsync.bus.middleware import LoggingMiddleware, MetricsMiddleware
from exsync.bus.topology import dead_queue_name, retry_queue_name
from exsync.metrics import Metrics
from exsync.schemas.config import DEFAULT_PREFETCH

__all__ = ["Message", "Worker", "DEFAULT_PREFETCH", "ATTEMPT_HEADER", "ERROR_HEADER", "FAILED_AT_HEADER",
           "QUEUE_HEADER", "HISTORY_HEADER"]

log = logging.getLogger(__name__)

DEFAULT_POLL_SECONDS = 0.5
DEFAULT_RECONNECT_MIN_SECONDS = 0.5
DEFAULT_RECONNECT_MAX_SECONDS = 30.0
ATTEMPT_HEADER = "x-exsync-attempt"
ERROR_HEADER = "x-exsync-last-error"
FAILED_AT_HEADER = "x-exsync-failed-at"
QUEUE_HEADER = "x-exsync-queue"
# The failures of a message replayed from its dead queue (exsync dead-letters replay), oldest first.
HISTORY_HEADER = "x-exsync-history"
MAX_ERROR_HEADER_CHARS = 2000


@dataclasses.dataclass(kw_only=True)
class Message:
    """One delivery as the handler sees it."""

    queue: str
    routing_key: str
    body: bytes
    headers: dict
    properties: object
    delivery_tag: int
    redelivered: bool
    event: dict | None = None
    started_at: float = 0.0
    handed_at: float = 0.0  # time.monotonic() when a handler got it, for the liveness check

    @property
    def attempt(self):
        """1 on the first delivery to the handler, counting every retry since."""
        return int(self.headers.get(ATTEMPT_HEADER, 1))

    @property
    def replayed(self):
        """True on the first delivery after `exsync dead-letters replay` sent it back."""
        return bool(self.headers.get(HISTORY_HEADER)) and ATTEMPT_HEADER not in self.headers

    @property
    def event_id(self):
        return (self.event or {}).get("id", "?")

    @classmethod
    def from_delivery(cls, queue, method, properties, body):
        message = cls(
            queue=queue,
            routing_key=method.routing_key,
            body=body,
            headers=dict(properties.headers or {}),
            properties=properties,
            delivery_tag=method.delivery_tag,
            redelivered=method.redelivered,
        )
        try:
            event = json.loads(body)
        except ValueError:
            event = None
        message.event = event if isinstance(event, dict) else None
        return message


class Worker:
    """Consumes one queue with a handler until stopped (SIGTERM/SIGINT or `stop()`).

    `handler(message)` commits the message's effects and returns, or raises. Up to `concurrency`
    handlers run at once on their own threads (only for handlers safe to call from several
    threads); all broker I/O stays on the thread that called `run()`, which keeps the heartbeats
    going while handlers work. `on_idle()`, when given, is called on that thread whenever no
    message arrived for `poll_seconds` and no handler is running. `heartbeat`, when given, is
    called on that thread on every turn of the loop, as `heartbeat(waiting_seconds=..., busy_since=...)`
    (an `exsync.health.Liveness.beat`): a handler that hangs or a loop that stops turning shows there.
    """

    def __init__(self, *, url, queue, handler, topology, prefetch=DEFAULT_PREFETCH, concurrency=1, metrics=None,
                 middleware=None, on_idle=None, heartbeat=None, poll_seconds=DEFAULT_POLL_SECONDS,
                 reconnect_min_seconds=DEFAULT_RECONNECT_MIN_SECONDS,
                 reconnect_max_seconds=DEFAULT_RECONNECT_MAX_SECONDS):
        self.url = url
        self.queue = queue
        self.handler = handler
        self.topology = topology
        self.concurrency = max(1, concurrency)
        self.prefetch = max(prefetch, self.concurrency)
        metrics = metrics or Metrics()
        self.metrics = metrics
        self.middleware = list(middleware) if middleware is not None else [
            LoggingMiddleware(), MetricsMiddleware(metrics=metrics)]
        self.on_idle = on_idle
        self.heartbeat = heartbeat or (lambda **_: None)
        self.poll_seconds = poll_seconds
        self.reconnect_min_seconds = reconnect_min_seconds
        self.reconnect_max_seconds = reconnect_max_seconds
        self._stopping = threading.Event()
        self._consuming = threading.Event()
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=self.concurrency,
                                                               thread_name_prefix=f"handler-{queue}")
        topology.queue(queue)  # fail early on a queue the topology does not know

    def stop(self, *_signal_args):
        self._stopping.set()

    @property
    def stopping(self):
        return self._stopping.is_set()

    @property
    def consuming(self):
        """True while connected to the broker and consuming (the readiness check)."""
        return self._consuming.is_set()

    def run(self) -> None:
        """Consumes until stopped, reconnecting with back-off while the broker is away."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        try:
            while not self._stopping.is_set():
                # A fresh back-off for each consuming session: the first wait after it ends is short.
                self._reconnecting()(self._consume)
        finally:
            self._executor.shutdown(wait=True)
        log.info("queue=%s worker stopped", self.queue)

    def _reconnecting(self) -> tenacity.Retrying:
        """Runs `_consume` again while the broker is away: waits double from the minimum to the maximum,
        cut short by `stop()`; stopping while the broker is away ends the run quietly."""

        def broker_lost(retry_state: tenacity.RetryCallState) -> None:
            self.metrics.set("bus_connected", 0, client="consumer")

        def before_sleep(retry_state: tenacity.RetryCallState) -> None:
            delay = retry_state.upcoming_sleep
            error = retry_state.outcome.exception() if retry_state.outcome is not None else None
            log.warning("queue=%s broker unavailable (%s); reconnecting in %.1f s", self.queue, error, delay)
            self.heartbeat(waiting_seconds=delay)

        def sleep(seconds: float) -> None:
            self._stopping.wait(seconds)  # stop() ends the wait at once

        return tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(BrokerUnavailable),
            stop=lambda _: self._stopping.is_set(),
            wait=tenacity.wait_exponential(multiplier=self.reconnect_min_seconds, min=self.reconnect_min_seconds,
                                           max=self.reconnect_max_seconds),
            after=broker_lost,
            before_sleep=before_sleep,
            sleep=sleep,
            retry_error_callback=lambda _: None,
        )

    def _consume(self):
        self.heartbeat()
        connection = open_connection(self.url)
        inbox: collections.deque[Message] = collections.deque()
        running: dict[concurrent.futures.Future, Message] = {}
        try:
            with connection.translated_errors():
                channel = connection.pika.channel()
                channel.confirm_delivery()
                self.topology.declare(channel)
                channel.basic_qos(prefetch_count=self.prefetch)
                self.metrics.set("bus_connected", 1, client="consumer")
                channel.basic_consume(self.queue, lambda _channel, method, properties, body: inbox.append(
                    Message.from_delivery(self.queue, method, properties, body)))
                log.info("queue=%s consuming (prefetch %d, concurrency %d)", self.queue, self.prefetch,
                         self.concurrency)
                self._consuming.set()
                while running or not self._stopping.is_set():
                    self.heartbeat(waiting_seconds=self.poll_seconds,
                                   busy_since=min((m.handed_at for m in running.values()), default=None))
                    while inbox and len(running) < self.concurrency and not self._stopping.is_set():
                        self._start(connection, channel, inbox.popleft(), running)
                    idle = not running and not inbox
                    # Returns early when a message arrives or a handler finishes (see _start).
                    connection.pika.process_data_events(time_limit=self.poll_seconds)
                    for future in [f for f in running if f.done()]:
                        self._finish(channel, running.pop(future), future.exception())
                    if idle and not inbox and self.on_idle is not None and not self._stopping.is_set():
                        # Time-based work of a consumer (flushing a batch) runs here, between messages.
                        self.on_idle()
                # Closing the channel returns the prefetched messages not yet handled to the queue.
                channel.close()
        finally:
            self._consuming.clear()
            for future in running:
                future.cancel()
            connection.close()

    def _start(self, connection, channel, message, running):
        for middleware in self.middleware:
            middleware.before_process(message)
        if message.event is None:
            self._finish(channel, message, PermanentError("the body is not a JSON object"))
            return
        message.handed_at = time.monotonic()
        future = self._executor.submit(self.handler, message)
        # Wake the I/O loop the moment the handler finishes instead of at the next poll.
        future.add_done_callback(lambda _: connection.pika.add_callback_threadsafe(lambda: None))
        running[future] = message

    def _finish(self, channel, message, error):
        if error is not None and not isinstance(error, Exception):
            raise error
        if error is None:
            outcome = "ok"
        elif isinstance(error, PermanentError) or message.attempt >= self.topology.max_attempts:
            outcome = "parked"
            self._forward(channel, message, dead_queue_name(self.queue), error, attempt=message.attempt)
        else:
            outcome = "retried"
            delay = self.topology.retry_delay_seconds(message.attempt)
            self._forward(channel, message, retry_queue_name(self.queue, delay), error, attempt=message.attempt + 1)
        channel.basic_ack(message.delivery_tag)
        for middleware in self.middleware:
            middleware.after_process(message, outcome=outcome, error=error)

    def _forward(self, channel, message, queue, error, *, attempt):
        headers = dict(message.headers)
        headers[ATTEMPT_HEADER] = attempt
        headers[ERROR_HEADER] = f"{type(error).__name__}: {error}"[:MAX_ERROR_HEADER_CHARS]
        headers[FAILED_AT_HEADER] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        headers[QUEUE_HEADER] = self.queue
        properties = message.properties
        properties.headers = headers
        channel.basic_publish("", queue, message.body, properties, mandatory=True)
