"""Clusters of real daemons on one machine: for ``wolfpack demo``, the integration tests and the benchmarks.

:class:`LabCluster` writes one node file per node (a fresh cluster key and
admin token), starts each ``wolfpackd`` as a process (optionally behind a
command prefix such as ``ip netns exec NS``), talks to their admin APIs,
kills and restarts them, and reads their transition logs.  On loopback every
node gets its own free ports; in namespaces every node has its own address
and the standard ports.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wolfpack.client import AdminClient, ApiError
from wolfpack.errors import WolfpackError
from wolfpack.runtime.daemon import config as node_config
from wolfpack.runtime.daemon.trace import read

TRANSPORT_PORT, HEARTBEAT_PORT, ADMIN_PORT = 7400, 7401, 7410


def free_port(host: str = "127.0.0.1", kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class LabNode:
    id: int
    host: str
    config_path: Path
    data_dir: Path
    prefix: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class LabCluster:
    def __init__(self, root: Path, hosts: Sequence[str], *, name: str = "lab", prefixes: Sequence[Sequence[str]] = (),
                 settings: Mapping[str, Any] | None = None, loopback: bool = True,
                 env: Mapping[str, str] | None = None) -> None:
        self.root = root
        self.name = name
        self.key = secrets.token_hex(32)
        self.token = secrets.token_hex(16)
        self.env = {**os.environ, **(env or {})}
        root.mkdir(parents=True, exist_ok=True)
        (root / "cluster.key").write_text(self.key + "\n")
        (root / "admin.token").write_text(self.token + "\n")
        for f in ("cluster.key", "admin.token"):
            (root / f).chmod(0o600)
        entries = []
        for i, host in enumerate(hosts):
            if loopback:
                ports = (free_port(host), free_port(host, socket.SOCK_DGRAM), free_port(host))
            else:
                ports = (TRANSPORT_PORT, HEARTBEAT_PORT, ADMIN_PORT)
            admin = (host, ports[2]) if loopback else ("127.0.0.1", ports[2])
            entries.append(node_config.NodeEntry(i, (host, ports[0]), ((host, ports[1]),), admin))
        self.nodes: list[LabNode] = []
        for e in entries:
            data = root / f"node{e.id}"
            values = {"cluster.name": name, "cluster.key_file": str(root / "cluster.key"),
                      "node.id": e.id, "node.data_dir": str(data), "admin.token_file": str(root / "admin.token"),
                      "admin.listen": f"{e.admin[0]}:{e.admin[1]}" if e.admin else "127.0.0.1:0",
                      **dict(settings or {})}
            path = root / f"node{e.id}.toml"
            path.write_text(node_config.render(values, entries))
            prefix = list(prefixes[e.id]) if e.id < len(prefixes) else []
            self.nodes.append(LabNode(e.id, e.address[0], path, data, prefix))
        node_config.load(self.nodes[0].config_path, environ={})  # the files must be valid

    # -- processes ---------------------------------------------------------------------------------
    def start(self, i: int) -> None:
        node = self.nodes[i]
        node.log_path = self.root / f"node{i}.log"
        with contextlib.suppress(FileNotFoundError):
            (node.data_dir / "run" / "admin.sock").unlink()
        log = open(node.log_path, "ab")  # noqa: SIM115 - the child keeps it
        node.process = subprocess.Popen(
            [*node.prefix, sys.executable, "-m", "wolfpack.runtime.daemon.main", "--config", str(node.config_path)],
            stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        log.close()

    def start_all(self) -> None:
        for i in range(len(self.nodes)):
            self.start(i)

    def kill(self, i: int, sig: int = signal.SIGKILL) -> None:
        """Kill node ``i``'s daemon (SIGKILL: a crash; its monitors then terminate their resources, R4)."""
        node = self.nodes[i]
        if node.process is not None and node.process.poll() is None:
            node.process.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.process.wait(timeout=15)

    def stop(self, i: int) -> None:
        """A clean stop (SIGTERM: a planned leave), then SIGKILL if it hangs."""
        node = self.nodes[i]
        if node.process is None:
            return
        if node.process.poll() is None:
            node.process.send_signal(signal.SIGTERM)
            try:
                node.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()

    def stop_all(self) -> None:
        for i in range(len(self.nodes)):
            self.stop(i)
        self._kill_leftovers()

    def _kill_leftovers(self) -> None:
        """Monitors and applications a killed daemon left (they end by themselves; this makes sure)."""
        for pid_file in self.root.glob("node*/run/**/application.pid"):
            with contextlib.suppress(ValueError, OSError):
                pid = int(pid_file.read_text().split()[0])
                os.killpg(pid, signal.SIGKILL)

    # -- the admin API ---------------------------------------------------------------------------------
    def client(self, i: int, timeout_s: float = 20.0) -> AdminClient:
        """Node ``i``'s admin API on its Unix socket (a file: reachable from outside a network namespace)."""
        return AdminClient(f"unix:{self.nodes[i].data_dir / 'run' / 'admin.sock'}", self.token, timeout_s)

    def wait_api(self, i: int, timeout_s: float = 30.0) -> AdminClient:
        deadline = time.monotonic() + timeout_s
        while True:
            node = self.nodes[i]
            if node.process is not None and node.process.poll() is not None:
                raise WolfpackError(f"node {i} exited with status {node.process.returncode}; see {node.log_path}")
            with contextlib.suppress(OSError, ApiError):
                client = self.client(i)
                client.get("/v1/local", timeout_s=2)
                return client
            if time.monotonic() > deadline:
                raise WolfpackError(f"node {i}'s admin API did not answer within {timeout_s:g} s; see {node.log_path}")
            time.sleep(0.05)

    def wait_for(self, what: str, check: Callable[[], bool], timeout_s: float = 30.0, every_s: float = 0.05) -> float:
        """Poll ``check`` until true; the seconds it took."""
        start = time.monotonic()
        while True:
            with contextlib.suppress(ApiError, OSError):
                if check():
                    return time.monotonic() - start
            if time.monotonic() - start > timeout_s:
                raise WolfpackError(f"{what}: not within {timeout_s:g} s")
            time.sleep(every_s)

    def status(self, i: int) -> Any:
        return self.client(i).get("/v1/status")

    def group(self, i: int, name: str) -> dict[str, Any]:
        return next(g for g in self.status(i)["groups"] if g["name"] == name)

    def formed(self, i: int, members: Sequence[int]) -> bool:
        local = self.client(i).get("/v1/local", timeout_s=2)
        return bool(local["membership"]["state"] == "Stable" and local["membership"]["members"] == sorted(members))

    # -- traces ----------------------------------------------------------------------------------------
    def trace_path(self, i: int) -> Path:
        return self.nodes[i].data_dir / "transitions.ndjson"

    def trace(self, i: int) -> list[dict[str, Any]]:
        path = self.trace_path(i)
        return list(read(path)) if path.exists() else []

    def __enter__(self) -> LabCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        for i in range(len(self.nodes)):
            self.kill(i)
        self._kill_leftovers()
