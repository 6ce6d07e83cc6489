"""Who listens on a TCP address in this node's network namespace (Linux ``/proc``), as ``ss -ltnp`` tells.

A probe uses it to find a copy of an application that nobody's pid file
names (one started by hand, or by a monitor whose files are gone): the
process that holds the listening socket of the application's health check.
Only listeners in the caller's own network namespace are seen
(``/proc/self/net``), so a copy that answers on another node never counts.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

LISTEN = "0A"
_TABLES = (("/proc/self/net/tcp", 4), ("/proc/self/net/tcp6", 6))


def _address(hex_address: str, family: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address of ``/proc/net/tcp*`` (32-bit words in host byte order, little-endian on Linux's x86/arm)."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.IPv4Address(words) if family == 4 else ipaddress.IPv6Address(words)


def parse_table(text: str, family: int) -> list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int, int]]:
    """The listening sockets of one ``/proc/net/tcp*`` table: (address, port, inode)."""
    out = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != LISTEN:
            continue
        host, _, port = fields[1].partition(":")
        out.append((_address(host, family), int(port, 16), int(fields[9])))
    return out


def _targets(host: str, port: int) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return set()
    return {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}


def _matches(listener: ipaddress.IPv4Address | ipaddress.IPv6Address,
             targets: set[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> bool:
    if listener.is_unspecified:  # 0.0.0.0 or ::: it accepts connections to every local address
        return True
    mapped = listener.ipv4_mapped if isinstance(listener, ipaddress.IPv6Address) else None
    return listener in targets or (mapped is not None and mapped in targets)


def listening_inodes(host: str, port: int) -> set[int]:
    """The inodes of the sockets that listen for ``host:port`` here (a wildcard listener counts)."""
    targets = _targets(host, port)
    found = set()
    for path, family in _TABLES:
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        found |= {inode for address, p, inode in parse_table(text, family) if p == port and _matches(address, targets)}
    return found


def socket_holders(inodes: set[int]) -> tuple[int, ...]:
    """The processes that hold one of these sockets open (those this process may look at: root sees all)."""
    wanted = {f"socket:[{inode}]" for inode in inodes}
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            fds = os.listdir(f"/proc/{entry.name}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{entry.name}/fd/{fd}") in wanted:
                    pids.append(int(entry.name))
                    break
            except OSError:
                continue
    return tuple(sorted(pids))
