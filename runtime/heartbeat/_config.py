"""Checking a heartbeat timer's configuration and binding its sockets.

Both implementations go through these functions, so the rules (and the
messages a user reads) exist once.  Every failure is a
:class:`wolfpack.errors.ConfigError` that says what is wrong and what to do.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from wolfpack.errors import ConfigError

MAX_NETWORKS = 8  # the C engine's fixed limit
MAX_NODE_ID = 0xFFFF  # a node id is a u16 on the wire

Address = tuple[str, int]


@dataclass(frozen=True)
class TimerConfig:
    node_id: int
    key: bytes
    networks: tuple[Address, ...]
    families: tuple[int, ...]
    period_ms: int
    missed_threshold: int


def _family(host: object, what: str) -> int:
    if isinstance(host, str):
        for family in (socket.AF_INET, socket.AF_INET6):
            try:
                socket.inet_pton(family, host)
            except OSError:
                continue
            return family
    raise ConfigError(
        f"{what}: {host!r} is not a numeric IP address; heartbeats do not resolve host names "
        "(a DNS failure must not look like a dead node). Give an IPv4 or IPv6 literal such as '10.0.1.5'."
    )


def _port(port: object, what: str, *, allow_zero: bool) -> int:
    low = 0 if allow_zero else 1
    if isinstance(port, bool) or not isinstance(port, int) or not low <= port <= 65535:
        raise ConfigError(f"{what}: port {port!r} is not an integer in {low}..65535. Give a valid UDP port.")
    return port


def _address(value: object, what: str) -> Address:
    if not (isinstance(value, tuple | list) and len(value) == 2):
        raise ConfigError(f"{what}: {value!r} is not a (host, port) pair. Write it as ('10.0.1.5', 3343).")
    return value[0], value[1]


def _node_id(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_NODE_ID:
        raise ConfigError(f"{what} {value!r} is not an integer in 0..{MAX_NODE_ID}. Give each node a small number.")
    return value


def check_timer(
    node_id: object, key: object, networks: object, period_ms: object, missed_threshold: object
) -> TimerConfig:
    node = _node_id(node_id, "node id")
    if not isinstance(key, bytes | bytearray) or not key:
        raise ConfigError(
            "the cluster key is empty (or not bytes): heartbeats would be unauthenticated and anyone could keep "
            "a dead node alive. Give the cluster's shared secret as bytes, e.g. 32 bytes from os.urandom."
        )
    if not isinstance(networks, Sequence) or isinstance(networks, str) or not networks:
        raise ConfigError("no networks given: a heartbeat needs at least one (bind address, port) to send from.")
    if len(networks) > MAX_NETWORKS:
        raise ConfigError(f"{len(networks)} networks given; at most {MAX_NETWORKS} are supported. Drop some.")
    addresses: list[Address] = []
    families: list[int] = []
    for index, entry in enumerate(networks):
        what = f"network {index}"
        host, port = _address(entry, what)
        families.append(_family(host, what))
        addresses.append((host, _port(port, what, allow_zero=True)))
    for value, name in ((period_ms, "period_ms"), (missed_threshold, "missed_threshold")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(
                f"{name} is {value!r}; it must be a whole number >= 1 (defaults: period_ms=100, "
                "missed_threshold=5). A suspicion needs at least one whole missed period."
            )
    assert isinstance(period_ms, int) and isinstance(missed_threshold, int)
    return TimerConfig(node, bytes(key), tuple(addresses), tuple(families), period_ms, missed_threshold)


def check_peers(config: TimerConfig, peers: object) -> dict[int, tuple[Address, ...]]:
    """Peers as ``{node_id: one (host, port) per network}``, in the networks' address families."""
    if not isinstance(peers, Mapping):
        raise ConfigError(
            f"peers must be a mapping {{node_id: [(host, port) per network]}}, not {type(peers).__name__}."
        )
    checked: dict[int, tuple[Address, ...]] = {}
    for peer_id, addresses in peers.items():
        node = _node_id(peer_id, "peer id")
        if node == config.node_id:
            raise ConfigError(f"peer {node} is this node's own id; list only the other nodes as peers.")
        if not isinstance(addresses, Sequence) or len(addresses) != len(config.networks):
            raise ConfigError(
                f"peer {node} has {addresses!r}; it needs exactly one (host, port) per network "
                f"({len(config.networks)}), in the same order as the networks."
            )
        row: list[Address] = []
        for index, entry in enumerate(addresses):
            what = f"peer {node} on network {index}"
            host, port = _address(entry, what)
            if _family(host, what) != config.families[index]:
                raise ConfigError(
                    f"{what}: {host} is not of the same IP version as this node's address "
                    f"{config.networks[index][0]} on that network. Use one IP version per network."
                )
            row.append((host, _port(port, what, allow_zero=False)))
        checked[node] = tuple(row)
    return checked


def bind_sockets(config: TimerConfig) -> list[socket.socket]:
    """One non-blocking UDP socket per network, bound; all closed again if one bind fails."""
    sockets: list[socket.socket] = []
    try:
        for index, (host, port) in enumerate(config.networks):
            sock = socket.socket(config.families[index], socket.SOCK_DGRAM)
            sockets.append(sock)
            sock.setblocking(False)
            try:
                sock.bind((host, port))
            except OSError as exc:
                raise ConfigError(
                    f"cannot bind the heartbeat socket of network {index} to {host} port {port}: {exc.strerror}. "
                    "Use an address configured on this host and a port no other process holds (0 picks a free one)."
                ) from exc
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets
