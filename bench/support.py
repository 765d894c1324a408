"""Shared pieces of the benchmarks: their RabbitMQ vhost, servers started and stopped, wrk, CPU times."""

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import TypeVar

from exsync.metrics import Metrics
from exsync.netutil import LOCALHOST, free_port, wait_for_port, wait_until

__all__ = ["BENCH_AMQP_URL", "bench_vhost", "purge_queues", "free_port", "wait_for_port", "server", "run_wrk",
           "cpu_seconds", "process_tree", "TreeCpu", "broker_pid", "listener_pid", "RequestCounter", "until"]

# EXSYNC_BENCH_VHOST: a vhost of one's own, so benchmarks run side by side do not purge each other's queues.
BENCH_VHOST = os.environ.get("EXSYNC_BENCH_VHOST", "exsync-bench")
BENCH_AMQP_URL = f"amqp://guest:guest@127.0.0.1:5672/{BENCH_VHOST}"


@contextlib.contextmanager
def bench_vhost(topology):
    """The benchmarks' own vhost with `topology` declared, its queues purged before and after.

    Made once and never deleted: RabbitMQ 3.10 can stall for minutes deleting a vhost that holds
    quorum queues, so a benchmark empties its queues instead.
    """
    from exsync.bus import declare_topology

    run = lambda *args: subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True,  # noqa: E731
                                       text=True).stdout
    if BENCH_VHOST not in run("list_vhosts").split():
        run("add_vhost", BENCH_VHOST)
        run("set_permissions", "-p", BENCH_VHOST, "guest", ".*", ".*", ".*")
    declare_topology(BENCH_AMQP_URL, topology)
    purge_queues(topology)
    try:
        yield BENCH_AMQP_URL
    finally:
        purge_queues(topology)


def purge_queues(topology):
    """Empties every queue of `topology` in the benchmarks' vhost."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(BENCH_AMQP_URL))
    try:
        channel = connection.channel()
        for name in topology.all_queue_names():
            channel.queue_purge(name)
    finally:
        connection.close()


_CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids):
    """User plus system CPU the processes have used so far (those gone since count nothing)."""
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS_PER_SECOND
    return total


def _cpu_by_pid(pids):
    """{pid: user plus system CPU seconds so far} of the processes still running."""
    found = {}
    for pid in pids:
        value = cpu_seconds([pid])
        if os.path.exists(f"/proc/{pid}"):
            found[pid] = value
    return found


class TreeCpu:
    """CPU used by process trees between `start()` and `stop()`, with the trees read again at the
    stop: a process born meanwhile (a PostgreSQL backend for a connection opened during the run)
    counts from zero; one that ended meanwhile counts nothing."""

    def __init__(self, roots):
        self.roots = dict(roots)
        self._before = {}

    def _trees(self):
        return {name: [pid for root in roots for pid in process_tree(root)] for name, roots in self.roots.items()}

    def start(self):
        self._before = {name: _cpu_by_pid(pids) for name, pids in self._trees().items()}

    def stop(self):
        """{name: CPU seconds its tree used since start()}."""
        used = {}
        for name, pids in self._trees().items():
            now, before = _cpu_by_pid(pids), self._before.get(name, {})
            used[name] = round(sum(value - before.get(pid, 0.0) for pid, value in now.items()), 2)
        return used


def _machine_seconds():
    """The machine's CPU seconds so far by kind, from /proc/stat: user, nice, system, idle, iowait,
    irq, softirq, steal."""
    with open("/proc/stat") as handle:
        return [int(value) / _CLOCK_TICKS_PER_SECOND for value in handle.readline().split()[1:9]]


def machine_busy_seconds():
    """CPU seconds every process on the machine has used (user, nice, system, irq, softirq): beside
    the parties' own figures, what other work took from the same cores."""
    user, nice, system, _, _, irq, softirq, _ = _machine_seconds()
    return user + nice + system + irq + softirq


def machine_steal_seconds():
    """CPU seconds the hypervisor gave the machine's virtual cores to others: a run that lost many
    was measured on a slower machine."""
    return _machine_seconds()[7]


def process_tree(pid):
    """`pid` and its descendants (a gunicorn arbiter and its workers)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parents[int(entry)] = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError):
                continue
    tree, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        tree.extend(frontier)
    return tree


def listener_pid(port):
    """The process listening on `port` on this machine, or None."""
    listing = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
    found = set(re.findall(r"pid=(\d+)", listing))
    return int(found.pop()) if len(found) == 1 else None


def broker_memory_bytes():
    """The broker's memory in binaries and in ETS tables, or None where rabbitmqctl cannot say.

    A quorum queue keeps the entries of its write-ahead log in ETS until the log reaches its size
    (512 MiB by default) and rolls over; the broker's CPU per message varies with how full it is,
    so a part of a benchmark records the state it started in.
    """
    try:
        text = subprocess.run(["rabbitmqctl", "-q", "eval", "erlang:memory([binary, ets])."], capture_output=True,
                              text=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {name: int(value) for name, value in re.findall(r"\{(\w+),(\d+)\}", text)} or None


def broker_pid(port=5672):
    """The process listening on the broker's AMQP port on this machine (RabbitMQ's Erlang VM), or None.

    Found by its listening socket rather than by name: `rabbitmqctl` calls and other nodes run
    Erlang VMs too, and only the broker the benchmark talks to counts.
    """
    return listener_pid(port)


@contextlib.contextmanager
def server(command: list[str], *, port: int, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """Runs a server process until the block ends; its output goes to a temporary log."""
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(command, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(LOCALHOST, port)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = io.open("{body}", "rb"):read()
{headers}
{pacing}
"""


def run_wrk(url, *, body, headers, connections, duration_seconds, threads=1, pause_ms=0):
    """Loads `url` with wrk; returns requests/s, p50 and p99 latency (seconds), and non-2xx count.

    With `pause_ms`, each connection waits that long on average after each answer: a paced load,
    so two servers can be compared at the same offered rate rather than each at its own saturation.
    """
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (make bench installs the Debian package)")
    with tempfile.TemporaryDirectory() as folder:
        body_path = os.path.join(folder, "body")
        with open(body_path, "wb") as handle:
            handle.write(body)
        script = os.path.join(folder, "post.lua")
        header_lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
        with open(script, "w") as handle:
            # Pauses drawn from 0..2x, so the connections drift apart instead of arriving in bursts.
            pacing = f"function delay() return math.random(0, {2 * int(pause_ms)}) end" if pause_ms else ""
            handle.write(WRK_SCRIPT.format(body=body_path, headers=header_lines, pacing=pacing))
        result = subprocess.run(
            ["wrk", "--latency", "-t", str(threads), "-c", str(connections), "-d", f"{duration_seconds}s",
             "-s", script, url],
            capture_output=True, text=True, check=True,
        )
    return parse_wrk(result.stdout)


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _seconds(text):
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]


def parse_wrk(output):
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p50 = _seconds(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))
    p99 = _seconds(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    total = int(re.search(r"(\d+) requests in", output).group(1))
    # wrk prints this line only when a connect, read, write or timeout failed: with a connection
    # per request (Connection: close) a server that cannot keep up shows here, not in non_2xx.
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {"requests_per_second": rps, "p50_seconds": p50, "p99_seconds": p99,
            "non_2xx": int(errors.group(1)) if errors else 0, "requests": total,
            "socket_errors": sum(int(each) for each in sockets.groups()) if sockets else 0}


def python():
    return sys.executable


def remove_sqlite(path):
    """Deletes a SQLite database and its WAL files, so a benchmark starts from an empty company."""
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)


class RequestCounter(Metrics):
    """Counts a shop client's requests (its `woo_requests` metric)."""

    def __init__(self):
        self.requests = 0

    def inc(self, name, amount=1, **labels):
        if name == "woo_requests":
            self.requests += amount


T = TypeVar("T")


def until(predicate: Callable[[], T], what: str, *, timeout_seconds: float, interval_seconds: float = 0.2) -> T:
    """The first truthy value of `predicate()` (exsync.netutil.wait_until), or RuntimeError naming `what`."""
    value = wait_until(predicate, timeout_seconds=timeout_seconds, interval_seconds=interval_seconds)
    if not value:
        raise RuntimeError(f"gave up waiting for {what}")
    return value
