"""RabbitMQ nodes of the tests' own on this machine (a three-node cluster for the node-loss scenario,
one node when the machine's broker does not answer): own node names, ports, data and log
directories, configuration and Erlang cookie, started with `rabbitmq-server -detached` and
clustered with `rabbitmqctl join_cluster`. The machine's own RabbitMQ (5672) is never touched: every
command names one of these nodes, and the configuration file the system's broker reads is replaced
by the cluster's own (RABBITMQ_CONF_ENV_FILE).
"""

import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import signal
import subprocess
import time

from tests.support.net import free_port, port_answers

__all__ = ["RabbitCluster", "rabbit_cluster"]

COMMAND_TIMEOUT_SECONDS = 120
# The package's scripts run as the invoking user; /usr/sbin's wrappers would switch to the rabbitmq
# user, whose home (and cookie) is the system broker's.
SCRIPTS = "/usr/lib/rabbitmq/bin"


def _script(name):
    path = os.path.join(SCRIPTS, name)
    return path if os.path.exists(path) else shutil.which(name)


@dataclasses.dataclass
class Node:
    name: str  # e.g. exsync-chaos-1@localhost
    amqp_port: int
    dist_port: int
    directory: str

    @property
    def url(self):
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/%2F"

    @property
    def pid_file(self):
        return os.path.join(self.directory, "node.pid")


class RabbitCluster:
    def __init__(self, *, directory, size=3, prefix="exsync-chaos"):
        self.directory = os.path.abspath(str(directory))
        suffix = secrets.token_hex(3)
        self.nodes = [Node(name=f"{prefix}-{suffix}-{n}@localhost", amqp_port=free_port(), dist_port=free_port(),
                           directory=os.path.join(self.directory, f"node{n}")) for n in range(1, size + 1)]
        self.cookie = secrets.token_hex(16)
        self.killed = set()

    @property
    def url(self):
        """EXSYNC_AMQP_URL naming every node."""
        return ",".join(node.url for node in self.nodes)

    def env(self, node):
        return {
            **{key: value for key, value in os.environ.items() if not key.startswith(("RABBITMQ_", "ERL_"))},
            # The cookie is read from $HOME/.erlang.cookie by the nodes and by rabbitmqctl alike.
            "HOME": self.directory,
            "RABBITMQ_NODENAME": node.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(node.amqp_port),
            "RABBITMQ_DIST_PORT": str(node.dist_port),
            "RABBITMQ_MNESIA_BASE": os.path.join(node.directory, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(node.directory, "log"),
            "RABBITMQ_PID_FILE": node.pid_file,
            "RABBITMQ_CONFIG_FILE": os.path.join(node.directory, "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": os.path.join(node.directory, "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(node.directory, "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": os.path.join(self.directory, "rabbitmq-env.conf"),
            # Erlang distribution on the loopback only.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def _write_files(self):
        os.makedirs(self.directory, exist_ok=True)
        cookie = os.path.join(self.directory, ".erlang.cookie")
        with open(cookie, "w") as handle:
            handle.write(self.cookie)
        os.chmod(cookie, 0o400)
        with open(os.path.join(self.directory, "rabbitmq-env.conf"), "w") as handle:
            handle.write("# the cluster's own: the system broker's environment file is not read\n")
        for node in self.nodes:
            os.makedirs(os.path.join(node.directory, "log"), exist_ok=True)
            with open(os.path.join(node.directory, "rabbitmq.conf"), "w") as handle:
                # AMQP on the loopback; no management or Prometheus listener (no plugin is enabled).
                handle.write(f"listeners.tcp.default = 127.0.0.1:{node.amqp_port}\n")
            with open(os.path.join(node.directory, "enabled_plugins"), "w") as handle:
                handle.write("[].\n")

    def ctl(self, node, *args, check=True):
        result = subprocess.run([_script("rabbitmqctl"), "-n", node.name, *args], env=self.env(node),
                                capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS)
        if check and result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl -n {node.name} {' '.join(args)}: {result.stdout}{result.stderr}")
        return result.stdout

    def start(self):
        self._write_files()
        if len(self.nodes) == 1:
            node = self.nodes[0]
            subprocess.run([_script("rabbitmq-server"), "-detached"], env=self.env(node), check=True,
                           capture_output=True, timeout=COMMAND_TIMEOUT_SECONDS)
            self._await(node)
            return self
        for node in self.nodes:
            subprocess.run([_script("rabbitmq-server"), "-detached"], env=self.env(node), check=True,
                           capture_output=True, timeout=COMMAND_TIMEOUT_SECONDS)
        for node in self.nodes:
            self._await(node)
        first = self.nodes[0]
        for node in self.nodes[1:]:
            self.ctl(node, "stop_app")
            self.ctl(node, "join_cluster", first.name)
            self.ctl(node, "start_app")
        for node in self.nodes:
            self._await(node)
        return self

    def _await(self, node, timeout_seconds=COMMAND_TIMEOUT_SECONDS):
        """Until the node has booted: `await_startup` fails at once while the VM is not yet registered."""
        deadline = time.monotonic() + timeout_seconds
        while True:
            result = subprocess.run([_script("rabbitmqctl"), "-n", node.name, "await_startup", "--timeout", "60"],
                                    env=self.env(node), capture_output=True, text=True, timeout=90)
            if result.returncode == 0:
                return
            if time.monotonic() >= deadline:
                raise RuntimeError(f"{node.name} did not start: {result.stdout}{result.stderr}")
            time.sleep(1)

    def running_nodes(self, via):
        """The nodes `via` sees running (from cluster_status)."""
        status = self.ctl(via, "cluster_status", "--formatter", "json")
        return set(json.loads(status).get("running_nodes", []))

    def pid(self, node):
        with open(node.pid_file) as handle:
            return int(handle.read().strip())

    def kill(self, node):
        """`kill -9` of the node's Erlang VM: the broker machine lost, without a goodbye."""
        os.kill(self.pid(node), signal.SIGKILL)
        self.killed.add(node.name)
        deadline = time.monotonic() + 30
        while port_answers("127.0.0.1", node.amqp_port, 0.2) and time.monotonic() < deadline:
            time.sleep(0.1)

    def stop(self):
        """Stops every node still running (then kills what did not stop) and removes the directory."""
        for node in self.nodes:
            if node.name in self.killed:
                continue
            with contextlib.suppress(Exception):
                self.ctl(node, "stop", check=False)
        for node in self.nodes:
            with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
                os.kill(self.pid(node), signal.SIGKILL)
        shutil.rmtree(self.directory, ignore_errors=True)


@contextlib.contextmanager
def rabbit_cluster(directory, size=3):
    cluster = RabbitCluster(directory=directory, size=size)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
