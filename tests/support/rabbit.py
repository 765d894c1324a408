"""A RabbitMQ virtual host of the test's own, made and removed with rabbitmqctl."""

import subprocess
import urllib.parse
import uuid

__all__ = ["PrivateVhost", "with_vhost"]


def with_vhost(url, vhost):
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(vhost, safe="")))


class PrivateVhost:
    """Creates `exsync-test-<random>` and grants the URL's user everything on it."""

    def __init__(self, *, base_url, run=None):
        self.base_url = base_url
        self.name = f"exsync-test-{uuid.uuid4().hex[:12]}"
        self.user = urllib.parse.urlsplit(base_url).username or "guest"
        self._run = run or (lambda *args: subprocess.run(["rabbitmqctl", "-q", *args], check=True,
                                                         capture_output=True, timeout=60))

    @property
    def url(self):
        return with_vhost(self.base_url, self.name)

    def __enter__(self):
        self._run("add_vhost", self.name)
        self._run("set_permissions", "-p", self.name, self.user, ".*", ".*", ".*")
        return self

    def __exit__(self, *exc):
        self._run("delete_vhost", self.name)
