"""A publisher many threads share: one connection per process, confirms pipelined on an I/O thread.

A server that waits on a broker confirm per request (gunicorn's gevent workers, whose greenlets
stand in for threads, or a consumer's handler threads) sends every request's message on one
connection as soon as it is handed over, and the broker's confirms (often several in one
`multiple` ack) release the waiters. Fewer connections, fewer broker rounds per message.
"""

import collections
import functools
import logging
import math
import os
import re
import sys
import threading
import time
from typing import Any, Self, TypeGuard

import pika
import pika.connection
import pika.exceptions

from exsync.bus.connection import DEFAULT_CONNECT_TIMEOUT_SECONDS, connection_parameters
from exsync.bus.errors import BrokerUnavailable, BusError, MessageUnroutable, PublishNotConfirmed
from exsync.bus.publisher import counted_publish, encode_event, message_properties
from exsync.bus.topology import Topology, declare_topology
from exsync.metrics import Metrics

__all__ = ["SharedPublisher", "DEFAULT_CONFIRM_OVERDUE_SECONDS", "DEFAULT_CONFIRM_TIMEOUT_SECONDS",
           "DEFAULT_RECONNECT_PAUSE_SECONDS"]

log = logging.getLogger(__name__)

DEFAULT_CONFIRM_TIMEOUT_SECONDS = 10.0
# After a failed connect, callers fail at once for this long instead of each waiting out a connect
# of its own: during an outage a server answers 503 quickly rather than queueing on the attempt.
DEFAULT_RECONNECT_PAUSE_SECONDS = 1.0
# A broker that is well confirms in milliseconds; a confirm this late means a stalled broker (a
# partition, a blocked connection) even though the connection still looks open.
DEFAULT_CONFIRM_OVERDUE_SECONDS = 2.0
# A message whose connection was lost before its confirm is sent once more, on a new connection.
PUBLISH_ATTEMPTS = 2


_NO_EXCHANGE = re.compile(r"no exchange '([^']*)'")


class _Answer:
    """The broker's answer to one message: settled once by the link's I/O thread (or greenlet),
    awaited by the message's publisher.

    Not a concurrent.futures.Future: a Future waits on a Condition over its own lock, and under
    gevent each wait makes and takes greenlet locks written in Python (3 % of a webhook delivery's
    CPU); an Event (gevent's own under its monkey-patching, compiled) is all a single answer needs.
    """

    __slots__ = ("handed_at", "_settled", "_error")

    def __init__(self) -> None:
        self.handed_at = time.monotonic()  # for oldest_unconfirmed_seconds
        self._settled = threading.Event()
        self._error: BaseException | None = None

    def set_result(self, _result: None) -> None:
        self._settled.set()

    def set_exception(self, error: BaseException) -> None:
        self._error = error
        self._settled.set()

    def done(self) -> bool:
        return self._settled.is_set()

    def result(self, timeout_seconds: float | None = None) -> None:
        """Returns once the broker confirmed; raises what it answered otherwise, or TimeoutError."""
        if not self._settled.wait(timeout_seconds):
            raise TimeoutError(f"no answer within {timeout_seconds} s")
        if self._error is not None:
            raise self._error


# What submit() queues for the I/O thread: exchange, routing key, body, properties, answer.
_Outgoing = tuple[str, str, bytes, pika.BasicProperties, _Answer]
# What waits for its confirm, by delivery tag: message id, exchange, answer, sent at (time.monotonic()).
_Sent = tuple[str, str, _Answer, float]


def _lost(error: BaseException, *, sent: bool, exchange: str | None = None) -> BusError:
    """What a message's waiter is told when its link ends with pika's `error`.

    BrokerUnavailable makes SharedPublisher.publish send the message once more on a new link;
    BusError does not.
    """
    if sent and isinstance(error, pika.exceptions.ChannelClosedByBroker):
        refused = _NO_EXCHANGE.search(error.reply_text or "")
        # The broker refused one message and closed the channel on every other. The refused one
        # is a mistake to report, not an outage to wait out (as in Connection.translated_errors);
        # the rest go again. Which one it was is known only when the broker names an exchange.
        if refused is not None and refused.group(1) == exchange:
            failure = BusError(f"RabbitMQ refused the message: {error.reply_code} {error.reply_text}")
            failure.__cause__ = error
            return failure
    failure = BrokerUnavailable(f"RabbitMQ connection lost{' before the confirm' if sent else ''}: {error!r}")
    failure.__cause__ = error
    return failure


class _LinkLost(Exception):
    """A link failed under a message (internal): the message goes once more on a new link."""

    def __init__(self, error: BrokerUnavailable) -> None:
        super().__init__(str(error))
        self.error = error


class _OneWritePerMessage(pika.connection.Connection):
    """A pika connection that hands a message's frames to its socket in one write.

    pika writes each frame (method, content header, body) with a send() of its own: on a socket
    with TCP_NODELAY (pika's default) that is three system calls, three segments and as many reads
    by the broker a message. The same bytes in one write cost one of each; nothing else changes on
    the wire. pika's hook is private: tests/bus/test_publisher.py fails if a release stops calling it.
    """

    def _output_marshaled_frames(self, marshaled_frames: list[bytes]) -> None:
        data = b"".join(marshaled_frames)
        self.bytes_sent += len(data)
        self.frames_sent += len(marshaled_frames)
        self._adapter_emit_data(data)


class _SelectConnection(_OneWritePerMessage, pika.SelectConnection):
    """The link's connection on threads: its own select loop on the link's I/O thread."""


@functools.cache
def _gevent_connection_class() -> type:
    """pika's gevent adapter with one write a message; imported only where gevent runs."""
    from pika.adapters.gevent_connection import GeventConnection

    class _GeventConnection(_OneWritePerMessage, GeventConnection):
        """The link's connection under gevent: its watchers in gevent's own loop."""

    return _GeventConnection


# Per process (a gunicorn worker forks after import): pika's gevent loop opens a pipe of its own,
# for callbacks from other OS threads, that nothing closes; one loop serves every link a process
# makes, so reconnecting through a long outage does not spend two descriptors an attempt.
_gevent_loops: dict[int, Any] = {}


def _gevent_loop() -> Any:
    """pika's loop over gevent's where gevent has patched the socket module (gunicorn's gevent
    workers), else None (threads: each link runs a SelectConnection on its own I/O thread).

    Under gevent a link's "thread" is a greenlet of the one OS thread, and a SelectConnection
    there polls through gevent's emulation of select.poll (watchers made and dropped on each of
    the three loop turns a message takes) and is woken through a socket pair. pika's gevent
    adapter keeps its watchers in gevent's own loop and runs a greenlet's callback there directly:
    measured side by side (issue 16), 0.12 ms less CPU a message at 550 messages/s and the
    receiver 0.13 ms less a delivery at saturation; the same at 190 deliveries/s.
    """
    monkey = sys.modules.get("gevent.monkey")  # loaded by whoever patched: nothing is patched without it
    if monkey is None or not monkey.is_module_patched("socket"):
        return None
    loop = _gevent_loops.get(os.getpid())
    if loop is None:
        import gevent
        from pika.adapters.gevent_connection import _GeventSelectorIOLoop

        loop = _gevent_loops[os.getpid()] = _GeventSelectorIOLoop(gevent.get_hub())
    return loop


class _Link:
    """One connection and its channel, driven by its own I/O thread until it closes: a
    SelectConnection on threads, pika's gevent adapter in gevent's loop under gevent."""

    def __init__(self, *, url: str, connect_timeout_seconds: float, node: int = 0) -> None:
        # SelectConnection takes one node; after a failed link the publisher starts the next at the
        # next node of a cluster (`node` counts the links made).
        nodes = connection_parameters(url, connect_timeout_seconds=connect_timeout_seconds)
        self.parameters = nodes[node % len(nodes)]
        self.ready = threading.Event()
        self.closed = threading.Event()
        self.ended = threading.Event()  # the connection has closed: its I/O thread may end
        self.failure: BaseException | None = None
        self.outbox: collections.deque[_Outgoing] = collections.deque()
        self.outbox_lock = threading.Lock()
        self.drain_scheduled = False
        self.pending: collections.OrderedDict[int, _Sent] = collections.OrderedDict()  # by delivery tag
        self.returned: set[str] = set()
        self.sequence = 0
        self.connection: Any = None  # pika's connection (untyped), once made
        self.channel: Any = None  # pika's channel (untyped), once open
        self.thread = threading.Thread(target=self._run, name="exsync-publisher-io", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        stopped: BaseException = ConnectionError("the publisher's I/O loop stopped")
        try:
            callbacks = dict(
                on_open_callback=lambda connection: connection.channel(on_open_callback=self._on_channel),
                on_open_error_callback=lambda _connection, error: self._fail(error),
                on_close_callback=lambda _connection, error: self._fail(error),
            )
            gevent_loop = _gevent_loop()
            if gevent_loop is None:
                self.connection = _SelectConnection(self.parameters, **callbacks)
                self.connection.ioloop.start()
            else:
                # gevent's loop runs the connection whenever a greenlet waits; this one waits for its end.
                self.connection = _gevent_connection_class()(self.parameters, custom_ioloop=gevent_loop, **callbacks)
                self.ended.wait()
        except BaseException as error:  # a greenlet killed included
            stopped = error
            raise
        finally:
            # Whatever ended the loop, the threads waiting on this link are released.
            self._fail(stopped)

    def _on_channel(self, channel: Any) -> None:
        self.channel = channel
        channel.add_on_close_callback(lambda _channel, error: self._close_connection(error))
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(self._on_confirm)
        self.ready.set()

    def _close_connection(self, error: BaseException) -> None:
        self._fail(error)
        if self.connection is not None and self.connection.is_open:
            self.connection.close()

    def _fail(self, error: BaseException) -> None:
        """Ends the link: what waits fails, and submit() takes nothing more."""
        with self.outbox_lock:
            # Under the lock submit() checks, so no message slips in after the outbox is emptied.
            if self.failure is None:
                self.failure = error
            self.closed.set()
            unsent, self.outbox = list(self.outbox), collections.deque()
        self.ready.set()
        for *_, future in unsent:
            future.set_exception(_lost(error, sent=False))
        for _, exchange, future, _ in self.pending.values():
            future.set_exception(_lost(error, sent=True, exchange=exchange))
        self.pending.clear()
        # Only once closed: a connection still closing has its Connection.Close to send.
        if self.connection is not None and self.connection.is_closed and not self.ended.is_set():
            self.ended.set()
            if isinstance(self.connection, _SelectConnection):  # the gevent loop is the process's: it runs on
                self.connection.ioloop.stop()

    def _on_return(self, _channel: Any, _method: Any, properties: pika.BasicProperties, _body: bytes) -> None:
        # A return always arrives before the ack of the same message.
        self.returned.add(properties.message_id)

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        acked = isinstance(method, pika.spec.Basic.Ack)
        tags = [t for t in self.pending if t <= method.delivery_tag] if method.multiple else [method.delivery_tag]
        for tag in tags:
            message_id, _, future, _ = self.pending.pop(tag)
            if not acked:
                future.set_exception(PublishNotConfirmed("the broker nacked the message"))
            elif message_id in self.returned:
                self.returned.discard(message_id)
                future.set_exception(MessageUnroutable("no queue bound for the routing key: the message was returned"))
            else:
                future.set_result(None)

    def _drain(self) -> None:
        # A channel that is closing leaves the outbox to _fail, which its close callback calls.
        while self.channel is not None and self.channel.is_open:
            with self.outbox_lock:
                if not self.outbox:
                    self.drain_scheduled = False
                    return
                exchange, routing_key, body, properties, future = self.outbox.popleft()
            try:
                self.channel.basic_publish(exchange, routing_key, body, properties, mandatory=True)
            except pika.exceptions.AMQPError as error:
                if isinstance(error, (pika.exceptions.ChannelWrongStateError,
                                      pika.exceptions.ConnectionWrongStateError)):
                    raise  # the link is ending; _fail settles everything
                # pika could not encode this message (a routing key over 255 bytes, say) and wrote
                # nothing: it alone fails, and the broker's delivery tags are not advanced.
                future.set_exception(BusError(f"the message cannot be sent: {error!r}"))
                continue
            self.sequence += 1
            self.pending[self.sequence] = (properties.message_id, exchange, future, time.monotonic())

    def submit(self, exchange: str, routing_key: str, body: bytes,
               properties: pika.BasicProperties) -> _Answer:
        """Hands a message to the I/O thread; the answer settles with the broker's."""
        future = _Answer()
        with self.outbox_lock:
            if self.closed.is_set():
                assert self.failure is not None  # _fail sets it with `closed`, under this lock
                raise _lost(self.failure, sent=False)
            self.outbox.append((exchange, routing_key, body, properties, future))
            # One wake-up per burst: a drain already scheduled takes this message too.
            wake, self.drain_scheduled = not self.drain_scheduled, True
        if wake:
            # pika queues the callback before waking its loop; a loop that has ended runs _run's
            # finally, whose _fail fails this message with the rest of the outbox.
            # Not None: a link is handed out only once _run made its connection and opened a channel.
            # Both pika loops' add_callback may be called from any thread; gevent's runs a
            # greenlet's callback in its own loop, without the socket pair.
            self.connection.ioloop.add_callback(self._drain)
        return future

    def oldest_unconfirmed_seconds(self) -> float:
        """How long the oldest message sent on this link has waited for its confirm (0 when none)."""
        try:
            oldest = next(iter(self.pending.values()), None)
        except RuntimeError:  # changed by the I/O thread while read: the next probe looks again
            return 0.0
        with self.outbox_lock:
            queued = self.outbox[0][4] if self.outbox else None
        waited = 0.0 if oldest is None else time.monotonic() - oldest[3]
        if queued is not None and not queued.done():
            # Handed over but not even written: an I/O loop that does not get to run is stalled too.
            waited = max(waited, time.monotonic() - queued.handed_at)
        return waited

    def close(self) -> None:
        if self.connection is None or self.closed.is_set():
            return
        try:
            self.connection.ioloop.add_callback(self.connection.close)
        except Exception:  # already stopping; nothing left to close
            return
        self.thread.join(timeout=5)


class SharedPublisher:
    """The Publisher interface (publish, check, close) over one shared, pipelined connection.

    Connecting runs on a thread of its own, so a caller waits for it no longer than it chose to
    (`publish_timeout_seconds`) and callers arriving meanwhile share the one attempt. `readiness()`
    answers from what is known without waiting on the broker, for probes that must always answer.
    """

    def __init__(self, *, url: str | None, topology: Topology | None = None, metrics: Metrics | None = None,
                 confirm_timeout_seconds: float = DEFAULT_CONFIRM_TIMEOUT_SECONDS,
                 connect_timeout_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
                 reconnect_pause_seconds: float = DEFAULT_RECONNECT_PAUSE_SECONDS,
                 publish_timeout_seconds: float | None = None,
                 confirm_overdue_seconds: float = DEFAULT_CONFIRM_OVERDUE_SECONDS) -> None:
        self.url = url
        self.topology = topology
        self.metrics = metrics or Metrics()
        self.confirm_timeout_seconds = confirm_timeout_seconds
        self.connect_timeout_seconds = connect_timeout_seconds
        self.reconnect_pause_seconds = reconnect_pause_seconds
        # The most one publish may take, connecting and confirming included (None: each wait has its own bound).
        self.publish_timeout_seconds = publish_timeout_seconds
        self.confirm_overdue_seconds = confirm_overdue_seconds
        self._lock = threading.Lock()
        self._link: _Link | None = None
        self._closed = False
        self._connecting: threading.Event | None = None  # set when the connect under way ends
        self._connect_failure: BrokerUnavailable | None = None
        self._connect_failed_at = -math.inf
        self._links_made = 0

    def _usable(self, link: _Link | None) -> TypeGuard[_Link]:
        return link is not None and not link.closed.is_set()

    def _current(self, deadline: float | None = None) -> _Link:
        """The open link, connecting (and declaring the topology) when there is none; waits until
        `deadline` (time.monotonic()) at most."""
        if deadline is None:
            deadline = time.monotonic() + self.connect_timeout_seconds * 3
        with self._lock:
            if self._closed:
                raise BrokerUnavailable("the publisher is closed")
            if self._usable(self._link):
                return self._link
            self._link = None
            done = self._start_connect()
        if not done.wait(max(0.0, deadline - time.monotonic())):
            raise BrokerUnavailable("still connecting to RabbitMQ")
        with self._lock:
            if self._usable(self._link):
                return self._link
            raise BrokerUnavailable(f"cannot connect to RabbitMQ: {self._connect_failure}") from self._connect_failure

    def _start_connect(self) -> threading.Event:
        """Under the lock: the Event of the connect under way, starting one unless in the pause."""
        since_seconds = time.monotonic() - self._connect_failed_at
        if self._connecting is None and since_seconds < self.reconnect_pause_seconds:
            # After a failed connect, callers fail at once for a while instead of each trying again.
            raise BrokerUnavailable(f"RabbitMQ was unreachable {since_seconds:.1f} s ago; not trying again "
                                    f"yet: {self._connect_failure}") from self._connect_failure
        if self._connecting is None:
            self._connecting = threading.Event()
            threading.Thread(target=self._connect_in_background, args=(self._connecting,),
                             name="exsync-publisher-connect", daemon=True).start()
        return self._connecting

    def _connect_in_background(self, done: threading.Event) -> None:
        link: _Link | None = None
        failure: BrokerUnavailable | None = None
        try:
            link = self._connect()
        except BrokerUnavailable as error:
            failure = error
        except Exception as error:  # anything else still ends this attempt, and is reported
            failure = BrokerUnavailable(f"cannot connect to RabbitMQ: {error!r}")
            failure.__cause__ = error
        with self._lock:
            if failure is not None:
                self._connect_failure, self._connect_failed_at = failure, time.monotonic()
                self.metrics.set("bus_connected", 0, client="publisher")
            elif self._closed:
                assert link is not None  # no failure: _connect returned it
                link.close()
            else:
                self._link = link
                self.metrics.set("bus_connected", 1, client="publisher")
            self._connecting = None
        done.set()

    def _connect(self) -> _Link:
        # Built without a URL (the WSGI module builds its app on import, settings incomplete or not):
        # publishing fails as an outage does, and the receiver answers 503.
        if self.url is None:
            raise BrokerUnavailable("no RabbitMQ URL is configured (EXSYNC_AMQP_URL)")
        if self.topology is not None:
            declare_topology(self.url, self.topology)
        link = _Link(url=self.url, connect_timeout_seconds=self.connect_timeout_seconds, node=self._links_made)
        self._links_made += 1
        wait_seconds = self.connect_timeout_seconds * 3
        if not link.ready.wait(wait_seconds):
            link.close()
            raise BrokerUnavailable(f"RabbitMQ did not open a channel within {wait_seconds} s")
        if link.closed.is_set():
            raise BrokerUnavailable(f"cannot connect to RabbitMQ: {link.failure!r}") from link.failure
        return link

    def publish(self, *, exchange: str, routing_key: str, event: dict[str, Any],
                headers: dict[str, Any] | None = None) -> None:
        """Sends one envelope and waits for the broker's confirm; raises like Publisher.publish.

        At least once: a message whose connection was lost before its confirm is sent again on a
        new connection (with the same message id), so it may be stored twice. A message not
        confirmed in time (PublishNotConfirmed) may be stored as well. An envelope written already
        (exsync.bus.events.Envelope) is sent as written.
        """
        body = getattr(event, "encoded", None) or encode_event(event)
        properties = message_properties(event, headers)
        deadline = None if self.publish_timeout_seconds is None else time.monotonic() + self.publish_timeout_seconds
        # One retry on a new connection, as Publisher does: a connection dropped since the last
        # message (a broker restart, a proxy's idle timeout) is only noticed when a message fails
        # on it. A broker that is down fails in _current, and that is not retried. Written out, not
        # through tenacity as Publisher's is: one more attempt with no wait, and tenacity's state
        # for a call (a RetryCallState, statistics greenlet-local under gevent) was 4 % of a
        # webhook delivery's CPU, spent on every message for the rare one sent again.
        with counted_publish(self.metrics, exchange):
            for attempt in range(1, PUBLISH_ATTEMPTS + 1):
                try:
                    self._attempt(exchange, routing_key, body, properties, deadline)
                    return
                except _LinkLost as lost:
                    if attempt == PUBLISH_ATTEMPTS:
                        raise lost.error from lost.error.__cause__
                    loss = lost
                # Outside the handler: the next attempt's error is not chained to this one.
                self.metrics.inc("bus_publish_retries", exchange=exchange or "default")
                log.warning("publish failed (%s); reconnecting once", loss)

    def _attempt(self, exchange: str, routing_key: str, body: bytes, properties: pika.BasicProperties,
                 deadline: float | None) -> None:
        link = self._current(deadline)
        try:
            self._send(link, exchange, routing_key, body, properties, deadline)
        except BrokerUnavailable as error:
            raise _LinkLost(error) from error

    def _send(self, link: _Link, exchange: str, routing_key: str, body: bytes, properties: pika.BasicProperties,
              deadline: float | None = None) -> None:
        future = link.submit(exchange, routing_key, body, properties)
        wait_seconds = self.confirm_timeout_seconds
        if deadline is not None:
            wait_seconds = max(0.0, min(wait_seconds, deadline - time.monotonic()))
        try:
            future.result(wait_seconds)
        except TimeoutError as error:
            raise PublishNotConfirmed(f"no confirm within {wait_seconds:.1f} s") from error

    def check(self) -> None:
        """Raises BrokerUnavailable unless the shared connection is (or can be) open."""
        self._current()

    def readiness(self, *, wait_seconds: float = 0.0) -> str | None:
        """Why this publisher cannot take messages now, or None when it can; never blocks longer
        than `wait_seconds` (a probe's budget), whatever the broker does.

        Not ready: closed, not connected (a connect is started, and waited for up to
        `wait_seconds`), or confirms overdue by more than `confirm_overdue_seconds` on an open
        connection (a stalled broker).
        """
        with self._lock:
            if self._closed:
                return "the publisher is closed"
            link = self._link if self._usable(self._link) else None
            done: threading.Event | None = None
            if link is None:
                try:
                    done = self._start_connect()
                except BrokerUnavailable as error:
                    return str(error)
        if link is None:
            assert done is not None  # started above whenever there is no usable link
            done.wait(wait_seconds)
            with self._lock:
                link = self._link if self._usable(self._link) else None
                if link is None:
                    return f"not connected to RabbitMQ: {self._connect_failure or 'connecting'}"
        overdue = link.oldest_unconfirmed_seconds()
        if overdue > self.confirm_overdue_seconds:
            return f"RabbitMQ has not confirmed a message for {overdue:.1f} s"
        return None

    def close(self) -> None:
        """Closes the connection; publishes still waiting fail, and later ones are refused."""
        with self._lock:
            link, self._link, self._closed = self._link, None, True
        if link is not None:
            link.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
