"""Bad traffic for a node's transport port, sent from inside a test namespace.

``python attacker.py garbage HOST PORT``: random bytes, then a frame whose
length prefix is far over the limit.
``python attacker.py replay HOST PORT KEYFILE CLUSTER NODE``: a node that
knows the cluster key (a stolen key, or a confused node) authenticates as
node NODE, sends one valid message frame, then the same bytes again: the
replay must be rejected.  Prints what the target did with each attempt.
"""

from __future__ import annotations

import asyncio
import os
import sys

from wolfpack.runtime.transport.frames import FrameType
from wolfpack.runtime.transport.handshake import Identity, dial
from wolfpack.runtime.transport.messages import Message


async def closed_by_peer(reader: asyncio.StreamReader) -> bool:
    """The target closes the connection within 5 s (after a refusal frame, perhaps)."""
    try:
        async with asyncio.timeout(5):
            while await reader.read(1 << 16):
                pass
        return True
    except ConnectionError:
        return True
    except TimeoutError:
        return False


async def garbage(host: str, port: int) -> None:
    for payload in (os.urandom(64), b"\xff\xff\xff\xff" + os.urandom(16)):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(payload)
        await writer.drain()
        print("closed" if await closed_by_peer(reader) else "kept open")
        writer.close()


async def replay(host: str, port: int, key_file: str, cluster: str, node: int) -> None:
    with open(key_file) as f:
        key = bytes.fromhex(f.read().strip())
    reader, writer = await asyncio.open_connection(host, port)
    session = await dial(reader, writer, Identity.from_cluster_key(node, cluster, key))
    frame = session.codec.encode(FrameType.MESSAGE, Message("nothing", "here", {}).to_body())
    writer.write(frame)  # valid: an unknown machine's message is dropped by the daemon, the link stays up
    await writer.drain()
    await asyncio.sleep(0.3)
    writer.write(frame)  # the same bytes again: a replay
    await writer.drain()
    print("closed" if await closed_by_peer(reader) else "kept open")
    writer.close()


if __name__ == "__main__":
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "garbage":
        asyncio.run(garbage(host, port))
    else:
        asyncio.run(replay(host, port, sys.argv[4], sys.argv[5], int(sys.argv[6])))
