"""A RabbitMQ virtual host of the test's own, made and removed with rabbitmqctl."""

import subprocess
import urllib.parse
import uuid

__all__ = ["TestVhost", "bind_probe", "queue_depth", "read_messages", "with_vhost"]


def with_vhost(url, vhost):
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(vhost, safe="")))


class TestVhost:
    """The tests' own virtual host, made once and emptied before every test.

    Vhosts are not made and deleted per test: deleting a vhost that holds quorum queues can stall
    RabbitMQ 3.10's vhost supervisor for minutes (seen here), and each `rabbitmqctl` call boots an
    Erlang VM. Tests run one at a time, so one vhost emptied between them isolates them as well.
    """

    NAME = "exsync-tests"

    def __init__(self, *, base_url, run=None, name=NAME):
        self.name = name
        self.base_url = base_url
        self.user = urllib.parse.urlsplit(base_url).username or "guest"
        self._run = run or (lambda *args: subprocess.run(["rabbitmqctl", "-q", *args], check=True,
                                                         capture_output=True, text=True, timeout=120).stdout)

    @property
    def url(self):
        return with_vhost(self.base_url, self.name)

    def ensure(self):
        names = (self._run("list_vhosts", "--no-table-headers") or "").split()
        if self.name not in names:
            self._run("add_vhost", self.name)
            self._run("set_permissions", "-p", self.name, self.user, ".*", ".*", ".*")
        return self

    def queues(self):
        """(name, type) of every queue in the vhost."""
        rows = (self._run("list_queues", "-p", self.name, "--no-table-headers", "name", "type") or "").splitlines()
        return [tuple(row.split()[:2]) for row in rows if len(row.split()) >= 2]

    def empty(self):
        """Purges the quorum queues (exsync's own) and deletes the rest (tests' probes, with their bindings).

        Quorum queues are kept rather than deleted: one deleted and declared again at once can be
        removed by its own slow deletion after the new declare has returned.
        """
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(self.url))
        try:
            channel = connection.channel()
            for name, kind in self.queues():
                if kind == "quorum":
                    channel.queue_purge(name)
                else:
                    channel.queue_delete(name)
        finally:
            connection.close()


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
