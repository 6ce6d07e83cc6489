"""Network namespaces for multi-node tests: one switch namespace with a bridge, one namespace per node.

Addresses exist only inside the namespaces made here (10.77.0.0/24); nothing
is routed outside them.  :meth:`Network.close` deletes every namespace this
object made, and only those.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

from wolfpack.runtime.daemon.lab import LabCluster

SUBNET = "10.77.0"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


class Network:
    def __init__(self, nodes: int, tag: str | None = None) -> None:
        tag = tag or f"wp{os.getpid() % 100000}"
        self.switch = f"{tag}sw"
        self.names = [f"{tag}n{i}" for i in range(nodes)]
        self.made: list[str] = []
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        ip("netns", "add", self.switch)
        self.made.append(self.switch)
        ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        ip("-n", self.switch, "link", "set", "br0", "up")
        ip("-n", self.switch, "link", "set", "lo", "up")
        for i, ns in enumerate(self.names):
            ip("netns", "add", ns)
            self.made.append(ns)
            ip("-n", self.switch, "link", "add", f"p{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            ip("-n", self.switch, "link", "set", f"p{i}", "master", "br0")
            ip("-n", self.switch, "link", "set", f"p{i}", "up")
            ip("-n", ns, "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "link", "set", "lo", "up")

    def address(self, i: int) -> str:
        return f"{SUBNET}.{i + 1}"

    def prefix(self, i: int) -> list[str]:
        """The command prefix that runs a program in node ``i``'s namespace."""
        return ["ip", "netns", "exec", self.names[i]]

    def cut(self, i: int) -> None:
        """Node ``i`` loses its only link (both directions at once)."""
        ip("-n", self.names[i], "link", "set", "eth0", "down")

    def heal(self, i: int) -> None:
        ip("-n", self.names[i], "link", "set", "eth0", "up")

    def drop(self, i: int, rules: Sequence[tuple[str, str]]) -> None:
        """Node ``i`` drops the packets of each (hook, match), e.g. ``("output", "udp dport 7401")``
        (nftables in its namespace), until :meth:`undrop`."""
        nft = [*self.prefix(i), "nft"]
        subprocess.run([*nft, "add", "table", "inet", "wolfpack_test"], check=True)
        for hook in ("input", "output"):
            subprocess.run([*nft, "add", "chain", "inet", "wolfpack_test", hook,
                            f"{{ type filter hook {hook} priority 0 ; }}"], check=True)
        for hook, match in rules:
            subprocess.run([*nft, "add", "rule", "inet", "wolfpack_test", hook, *match.split(), "drop"], check=True)

    def undrop(self, i: int) -> None:
        subprocess.run([*self.prefix(i), "nft", "delete", "table", "inet", "wolfpack_test"], check=True)

    def separate(self, i: int, others: Sequence[int]) -> None:
        """Node ``i`` drops every packet from and to ``others`` until :meth:`undrop`; the rest of the network,
        a shared disk's target on the switch included, stays reachable."""
        addresses = "{ " + ", ".join(self.address(k) for k in others) + " }"
        self.drop(i, [("input", f"ip saddr {addresses}"), ("output", f"ip daddr {addresses}")])

    def switch_address(self, host: int = 254) -> str:
        """Give the switch namespace (its bridge) an address on the test subnet, for a service all nodes reach
        (a shared disk's iSCSI target); the address."""
        address = f"{SUBNET}.{host}"
        ip("-n", self.switch, "addr", "add", f"{address}/24", "dev", "br0")
        return address

    def run(self, i: int, argv: Sequence[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.prefix(i), *argv], capture_output=True, text=True, timeout=timeout)

    def close(self) -> None:
        for ns in reversed(self.made):
            ip("netns", "del", ns, check=False)
        self.made.clear()


def formed(lab: LabCluster, members: list[int], timeout_s: float = 30) -> None:
    """Until every node of ``members`` has installed exactly that membership."""
    lab.wait_for(f"membership {members}", lambda: all(lab.formed(i, members) for i in members), timeout_s)


def start_formed(lab: LabCluster, members: list[int] | None = None) -> None:
    """Start every daemon of ``lab``, wait for their admin APIs, then until they have formed one membership."""
    nodes = list(range(len(lab.nodes))) if members is None else members
    for i in nodes:
        lab.start(i)
    for i in nodes:
        lab.wait_api(i)
    formed(lab, nodes)
