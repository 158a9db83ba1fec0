"""A raw peer of a version replica's channel, for the tests that play one (a hostile process on
the node, or a router speaking frames by hand): asyncio streams over the channel's socket."""

from __future__ import annotations

import asyncio
from typing import Any

from rayrollout.dataplane.frames import PREFIX_BYTES, header_length, parse_header
from rayrollout.serving import channel


async def open_stream(where: dict[str, Any]
                      ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Streams to the channel at ``where`` (``path`` or ``port``, as ``channel_address``
    gives it)."""
    return await asyncio.open_connection(sock=await channel.open_socket(where))


async def read_frame(reader: asyncio.StreamReader) -> tuple[dict[str, Any], bytearray]:
    """The next frame off ``reader`` (no more)."""
    n = header_length(await reader.readexactly(PREFIX_BYTES))
    head = parse_header(await reader.readexactly(n))
    return head, bytearray(await reader.readexactly(head["body"]))


async def refused_after(where: dict[str, Any], payload: bytes) -> bytes:
    """Send ``payload``; what the server answers before it closes the connection."""
    reader, writer = await open_stream(where)
    writer.write(payload)
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return data
