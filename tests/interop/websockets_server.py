"""A WebSocket server built on Python's `websockets`, for tests/interop.rs.

usage: python websockets_server.py [PORT]   (0 or none: a free port)

Listens on 127.0.0.1 and prints `LISTENING <port>` as its first line.
Exits when its stdin closes (the test ended) or after 10 minutes.

Every text or binary message is echoed back as it came, except text
commands (the protocol is the same in ws_server.js):
  cmd:fragment             a text message in 3 fragments, then a 256 KiB
                           binary message in 4 fragments (fragment_binary())
  cmd:ping:PAYLOAD         a Ping with PAYLOAD; on its Pong, answers
                           `pong:PAYLOAD`, or `no-pong` after 5 s
  cmd:close:CODE:REASON    closes with that code and reason
  cmd:protocol             answers `protocol:` and the chosen subprotocol
Subprotocols: chat.v2 and superchat are accepted; none is required.
"""

import asyncio
import os
import sys
import threading

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

SUBPROTOCOLS = ["chat.v2", "superchat"]
FRAGMENTED_TEXT = ["frag", "mented ", "text \u2713"]
LIFETIME_S = 10 * 60
PONG_TIMEOUT_S = 5


def fragment_binary():
    """4 fragments of 64 KiB; byte i of the message is i % 251."""
    whole = bytes(i % 251 for i in range(256 * 1024))
    return [whole[at:at + 64 * 1024] for at in range(0, len(whole), 64 * 1024)]


def select_subprotocol(_connection, offered):
    # The library's default refuses clients that offer none; accept them.
    return next((p for p in SUBPROTOCOLS if p in offered), None)


async def command(ws, text):
    _, name, *args = text.split(":")
    if name == "fragment":
        # An iterable is sent as one message, one fragment per item.
        await ws.send(FRAGMENTED_TEXT)
        await ws.send(fragment_binary())
    elif name == "ping":
        payload = ":".join(args)
        pong = await ws.ping(payload)
        try:
            await asyncio.wait_for(pong, PONG_TIMEOUT_S)
            await ws.send("pong:" + payload)
        except asyncio.TimeoutError:
            await ws.send("no-pong")
    elif name == "close":
        await ws.close(int(args[0]), ":".join(args[1:]))
    elif name == "protocol":
        await ws.send("protocol:" + (ws.subprotocol or ""))
    else:
        await ws.send("unknown command: " + text)


async def handler(ws):
    try:
        async for message in ws:
            if isinstance(message, str) and message.startswith("cmd:") and len(message) < 256:
                await command(ws, message)
            else:
                await ws.send(message)
    except ConnectionClosed:
        pass  # any close code other than 1000/1001, ours included


def exit_when_stdin_closes():
    sys.stdin.read()
    os._exit(0)


async def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    async with serve(
        handler,
        "127.0.0.1",
        port,
        subprotocols=SUBPROTOCOLS,
        select_subprotocol=select_subprotocol,
        max_size=64 * 1024 * 1024,
        ping_interval=None,
    ) as server:
        print("LISTENING %d" % server.sockets[0].getsockname()[1], flush=True)
        try:
            await asyncio.wait_for(server.serve_forever(), LIFETIME_S)
        except asyncio.TimeoutError:
            pass


if __name__ == "__main__":
    asyncio.run(main())
