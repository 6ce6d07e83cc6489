"""One authenticated connection to a peer, after the handshake."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from wolfpack.runtime.transport.frames import Frame, FrameType
from wolfpack.runtime.transport.handshake import Session


def format_address(peername: object) -> str:
    """``host:port`` of a socket address (IPv4 or IPv6 tuple); ``repr`` of anything else."""
    if isinstance(peername, tuple) and len(peername) >= 2:
        host, port = peername[0], peername[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return repr(peername)


@dataclass(frozen=True)
class LinkInfo:
    """What the admin API shows of a link: the peer's address and whether this node dialed it."""

    address: str
    outbound: bool


class Link:
    """The session and the streams of one connection.  Sending is synchronous: a frame is encoded, numbered
    and handed to the transport's buffer in one step, so frames leave in sequence order and nobody waits."""

    def __init__(
        self,
        session: Session,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        address: str,
        *,
        outbound: bool,
    ) -> None:
        self.peer_id = session.peer_id
        self.codec = session.codec
        self.reader = reader
        self.writer = writer
        self.address = address
        self.outbound = outbound

    @property
    def closing(self) -> bool:
        return self.writer.transport.is_closing()

    def backlog(self) -> int:
        """Bytes written but not yet taken by the kernel."""
        return self.writer.transport.get_write_buffer_size()

    def send(self, ftype: FrameType, body: bytes) -> None:
        self.writer.write(self.codec.encode(ftype, body))

    async def receive(self) -> Frame | None:
        return await self.codec.read(self.reader)

    def close(self) -> None:
        self.writer.close()

    def info(self) -> LinkInfo:
        return LinkInfo(self.address, self.outbound)
