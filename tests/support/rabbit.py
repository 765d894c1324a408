"""A RabbitMQ virtual host of the test's own, made and removed with rabbitmqctl."""

import subprocess
import urllib.parse
import uuid

__all__ = ["VhostPool", "bind_probe", "queue_depth", "read_messages", "with_vhost"]


def with_vhost(url, vhost):
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(vhost, safe="")))


def _erlang_list(names):
    return "[" + ", ".join(f'<<"{name}">>' for name in names) + "]"


class VhostPool:
    """Fresh virtual hosts for tests, made in batches and removed together at the end.

    rabbitmqctl costs about a second per call (it boots an Erlang VM), so vhosts are made and
    deleted many at a time through `rabbitmqctl eval`; each test still gets one nobody used.
    """

    ACTING_USER = "exsync-tests"

    def __init__(self, *, base_url, run=None, batch=16):
        self.base_url = base_url
        self.user = urllib.parse.urlsplit(base_url).username or "guest"
        self.batch = batch
        self._run = run or (lambda *args: subprocess.run(["rabbitmqctl", "-q", *args], check=True,
                                                         capture_output=True, timeout=60))
        self._ready = []
        self._made = []

    def take(self):
        """A URL on a vhost of the caller's own."""
        if not self._ready:
            names = [f"exsync-test-{uuid.uuid4().hex[:12]}" for _ in range(self.batch)]
            self._run("eval", (
                f"[begin ok = rabbit_vhost:add(V, <<\"{self.ACTING_USER}\">>), "
                f"ok = rabbit_auth_backend_internal:set_permissions(<<\"{self.user}\">>, V, "
                f"<<\".*\">>, <<\".*\">>, <<\".*\">>, <<\"{self.ACTING_USER}\">>) end "
                f"|| V <- {_erlang_list(names)}]."
            ))
            self._ready.extend(names)
            self._made.extend(names)
        return with_vhost(self.base_url, self._ready.pop())

    def close(self):
        if self._made:
            self._run("eval", f"[rabbit_vhost:delete(V, <<\"{self.ACTING_USER}\">>) || V <- {_erlang_list(self._made)}].")
            self._made, self._ready = [], []


def bind_probe(url, *, exchange, routing_key, queue=None):
    """A queue of the test's own bound to `exchange`, to see what was published there."""
    import pika

    queue = queue or f"probe-{uuid.uuid4().hex[:8]}"
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True)
        channel.queue_bind(queue, exchange, routing_key=routing_key)
    finally:
        connection.close()
    return queue


def read_messages(url, queue, *, count=None, timeout_seconds=5.0):
    """Takes messages off a queue (acking them): `count` of them, or all there within the timeout.

    Returns a list of (body as JSON, properties).
    """
    import json
    import time

    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    messages = []
    deadline = time.monotonic() + timeout_seconds
    try:
        channel = connection.channel()
        while time.monotonic() < deadline and (count is None or len(messages) < count):
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                if count is None and messages:
                    break
                time.sleep(0.05)
                continue
            messages.append((json.loads(body), properties))
    finally:
        connection.close()
    return messages


def queue_depth(url, queue):
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return connection.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        connection.close()
