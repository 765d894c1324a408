"""A small TCP proxy a test puts between exsync and a service, to cut it and restore it.

Tests never stop the shared services; they cut this proxy instead.
"""

import socket
import threading
import urllib.parse

from tests.support.net import free_port

__all__ = ["TcpProxy", "proxy_in_front_of"]


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; `cut()` drops every connection and refuses new ones,
    `stall()` keeps connections open (and accepts new ones) but forwards no byte until `resume()`:
    a network partition or a blocked peer, which is worse for a client than a refusal."""

    def __init__(self, *, target_host, target_port, port=None):
        self.target = (target_host, target_port)
        self.port = port or free_port()
        self._lock = threading.Lock()
        self._sockets = set()
        self._listener = None
        self._stopped = threading.Event()
        self._flowing = threading.Event()
        self._flowing.set()

    def start(self):
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.port))
        self._listener.listen(64)
        self._stopped.clear()
        threading.Thread(target=self._accept_loop, args=(self._listener,), daemon=True).start()
        return self

    def _accept_loop(self, listener):
        while not self._stopped.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._stopped.is_set():  # cut while this one was connecting: it must not outlive the cut
                    client.close()
                    upstream.close()
                    return
                self._sockets.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source, sink):
        try:
            while chunk := source.recv(65536):
                # Stalled: the chunk waits here, and nothing more is read, so the sender's buffers fill.
                self._flowing.wait()
                if self._stopped.is_set():
                    break
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def cut(self):
        """Closes the listener and every open connection: the service is 'down'."""
        self._stopped.set()
        self._flowing.set()  # a stalled pipe wakes to find its sockets closed
        if self._listener is not None:
            # close() alone leaves a thread blocked in accept() still accepting on Linux.
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def stall(self):
        """Forwards nothing more, in either direction, while every connection stays open."""
        self._flowing.clear()

    def resume(self):
        """Forwards again what was held and what follows."""
        self._flowing.set()

    def restore(self):
        """Listens again on the same port."""
        return self.start()

    stop = cut


def proxy_in_front_of(url):
    """A started TcpProxy to the service at `url` (amqp://...), and the same URL through it."""
    parts = urllib.parse.urlsplit(url)
    proxy = TcpProxy(target_host=parts.hostname, target_port=parts.port or 5672).start()
    credentials = ":".join(filter(None, (parts.username, parts.password)))
    credentials = f"{credentials}@" if credentials else ""
    return proxy, urllib.parse.urlunsplit(parts._replace(netloc=f"{credentials}127.0.0.1:{proxy.port}"))
