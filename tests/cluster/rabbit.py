"""A throwaway RabbitMQ cluster on loopback: real ``rabbitmq-server`` nodes, no Docker.

``RabbitCluster(workdir, size)`` starts ``size`` nodes of the installed RabbitMQ
(Debian's, run from ``/usr/lib/rabbitmq/bin`` so they keep this environment)
and joins nodes 2.. to node 1 with ``rabbitmqctl join_cluster``. Each node has
its own node name (``plc<id>-<n>@localhost``), AMQP, distribution and Prometheus
ports, data and log directories, config and enabled-plugins files; all share
one Erlang cookie in a ``HOME`` of the cluster's own. Nothing of the machine's
broker is read or touched: not ``/etc/rabbitmq``, not its cookie, not its ports
(5672, 25672); its epmd is shared, which only maps names to ports.

``kill(node)`` is ``kill -9`` of the node's VM; ``start(node)`` restarts it on
the same data (it rejoins by itself); ``leader(queue)`` asks
``rabbitmq-queues quorum_status``. ``close()`` kills every node and the
workdir keeps the logs for a failed test to show.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.support.net import free_port, http_status

BIN = Path("/usr/lib/rabbitmq/bin")
_DIST_PORTS = range(26100, 29900)
_JSON = ("--formatter", "json")  # CLI tools take dist port + 10000: keep under 65535


def available() -> bool:
    """True when the RabbitMQ server scripts this harness runs are installed."""
    return (BIN / "rabbitmq-server").exists() and (BIN / "rabbitmqctl").exists()


@dataclass
class Node:
    """One node: its name, ports, files and (while it runs) its VM process."""

    index: int
    name: str
    amqp_port: int
    dist_port: int
    prometheus_port: int
    base: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class RabbitCluster:
    """See the module docstring."""

    def __init__(self, workdir: Path, size: int = 3) -> None:
        self.workdir = workdir
        self.home = workdir / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        cookie.write_text(uuid.uuid4().hex.upper())
        cookie.chmod(0o400)
        tag = uuid.uuid4().hex[:6]
        dist = _free_dist_ports(size)
        self.nodes = [
            Node(n, f"plc{tag}-{n}@localhost", free_port(), port, free_port(), workdir / f"n{n}")
            for n, port in enumerate(dist, start=1)
        ]
        for node in self.nodes:
            self._write_files(node)

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    # -- life cycle ----------------------------------------------------------------------
    def start_all(self) -> None:
        for node in self.nodes:
            self.spawn(node)
        for node in self.nodes:
            self.await_startup(node)
        first = self.nodes[0]
        for node in self.nodes[1:]:
            self.ctl(node, "stop_app")
            self.ctl(node, "join_cluster", first.name)
            self.ctl(node, "start_app")
        self.ctl(first, "await_online_nodes", str(len(self.nodes)))

    def start(self, node: Node) -> None:
        """Start a stopped node on its data directory and wait until it runs RabbitMQ."""
        self.spawn(node)
        self.await_startup(node)

    def kill(self, node: Node) -> None:
        """``kill -9`` of the node's Erlang VM: no shutdown, no goodbye to its peers."""
        assert node.process is not None
        pid_file = node.base / "rabbitmq.pid"
        vm = int(pid_file.read_text().strip() or 0) if pid_file.exists() else 0
        assert vm in (0, node.process.pid), f"{node.name}: the VM is not the process we started"
        node.process.send_signal(signal.SIGKILL)
        node.process.wait(30)
        node.process = None

    def close(self) -> None:
        for node in self.nodes:
            if node.running:
                self.kill(node)

    def await_startup(self, node: Node, within: float = 120) -> None:
        """Wait until the node runs RabbitMQ (the CLI cannot reach a VM still booting)."""
        deadline = time.monotonic() + within
        while True:
            assert node.running, f"{node.name} exited:\n{self.log_tail(node)}"
            try:
                self.ctl(node, "await_startup", "--timeout", "30", timeout=60)
                return
            except subprocess.CalledProcessError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    # -- questions ------------------------------------------------------------------------
    def running_nodes(self) -> list[Node]:
        return [node for node in self.nodes if node.running]

    def leader(self, queue: str) -> Node:
        """The running node that leads quorum queue ``queue`` (fails if none does)."""
        name = self.leader_name(queue)
        found = [node for node in self.running_nodes() if node.name == name]
        assert found, f"{queue} has no leader on a running node (reported: {name})"
        return found[0]

    def leader_name(self, queue: str) -> str | None:
        """The leader ``rabbitmq-queues quorum_status`` reports (may be a dead node for a
        moment after a kill), or None when no running node can say."""
        for asker in self.running_nodes():
            try:
                out = self.run(asker, "rabbitmq-queues", "quorum_status", queue, *_JSON)
                leaders = [m["Node Name"] for m in json.loads(out) if m["Raft State"] == "leader"]
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired, ValueError):
                continue
            return str(leaders[0]) if len(leaders) == 1 else None
        return None

    def members(self, queue: str) -> set[str]:
        asker = self.running_nodes()[0]
        out = self.run(asker, "rabbitmq-queues", "quorum_status", queue, *_JSON)
        return {m["Node Name"] for m in json.loads(out)}

    def prometheus(self, node: Node) -> str:
        """The node's per-object Prometheus scrape (``/metrics``)."""
        import urllib.request

        url = f"http://127.0.0.1:{node.prometheus_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            return str(response.read().decode())

    def prometheus_up(self, node: Node) -> bool:
        return http_status(f"http://127.0.0.1:{node.prometheus_port}/metrics") == 200

    # -- commands -------------------------------------------------------------------------
    def ctl(self, node: Node, *args: str, timeout: float = 120) -> str:
        return self.run(node, "rabbitmqctl", *args, timeout=timeout)

    def run(self, node: Node, tool: str, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(
            [str(BIN / tool), "-n", node.name, *args],
            env=self._env(node),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise subprocess.CalledProcessError(
                result.returncode, [tool, *args], result.stdout, result.stderr
            )
        return result.stdout

    def log_tail(self, node: Node, chars: int = 3000) -> str:
        logs = sorted((node.base / "log").glob("*.log"))
        return "".join(path.read_text(errors="replace")[-chars:] for path in logs)

    # -- internals ------------------------------------------------------------------------
    def spawn(self, node: Node) -> None:
        """Start the node's VM (returns at once; ``await_startup`` waits for RabbitMQ)."""
        assert not node.running, f"{node.name} already runs"
        with (node.base / "stdout.log").open("ab") as out:
            node.process = subprocess.Popen(
                [str(BIN / "rabbitmq-server")],
                env=self._env(node),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def _env(self, node: Node) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        return {
            **keep,
            "HOME": str(self.home),
            "RABBITMQ_NODENAME": node.name,
            "RABBITMQ_USE_LONGNAME": "false",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(node.amqp_port),
            "RABBITMQ_DIST_PORT": str(node.dist_port),
            "RABBITMQ_CONF_ENV_FILE": str(node.base / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(node.base / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(node.base / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(node.base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(node.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(node.base / "log"),
            "RABBITMQ_PID_FILE": str(node.base / "rabbitmq.pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            # Exec the VM in place of the script, so the process we hold *is* the node.
            "RUNNING_UNDER_SYSTEMD": "true",
        }

    def _write_files(self, node: Node) -> None:
        for sub in ("mnesia", "log"):
            (node.base / sub).mkdir(parents=True, exist_ok=True)
        (node.base / "rabbitmq-env.conf").write_text("# this node's settings are in its env\n")
        (node.base / "advanced.config").write_text("[].\n")
        (node.base / "enabled_plugins").write_text("[rabbitmq_prometheus].\n")
        (node.base / "rabbitmq.conf").write_text(
            "\n".join(
                [
                    f"listeners.tcp.default = 127.0.0.1:{node.amqp_port}",
                    f"prometheus.tcp.port = {node.prometheus_port}",
                    "prometheus.tcp.ip = 127.0.0.1",
                    "prometheus.return_per_object_metrics = true",
                    "loopback_users.guest = true",
                    "cluster_partition_handling = pause_minority",
                    # Killed nodes come back on their own: no waiting for a forgotten peer.
                    "mnesia_table_loading_retry_limit = 30",
                    "mnesia_table_loading_retry_timeout = 5000",
                    "disk_free_limit.absolute = 50MB",
                    "vm_memory_high_watermark.relative = 0.2",
                    "log.console = false",
                    "log.file.level = info",
                    "",
                ]
            )
        )


def _free_dist_ports(count: int) -> list[int]:
    """``count`` free ports of ``_DIST_PORTS`` whose CLI ports (+10000) are free too."""
    start = int.from_bytes(os.urandom(2), "big") % len(_DIST_PORTS)
    found: list[int] = []
    for offset in range(len(_DIST_PORTS)):
        port = _DIST_PORTS[(start + offset * 7) % len(_DIST_PORTS)]
        if port in found or any(abs(port - other) < 12 for other in found):
            continue
        if _free(port) and all(_free(port + 10000 + k) for k in range(11)):
            found.append(port)
        if len(found) == count:
            return found
    raise RuntimeError("no free Erlang distribution ports")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_for(predicate: object, within: float, what: str, step: float = 0.5) -> None:
    """Poll ``predicate()`` until truthy; ``AssertionError`` naming ``what`` after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        assert callable(predicate)
        if predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        time.sleep(step)
