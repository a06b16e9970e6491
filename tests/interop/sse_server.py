"""A Server-Sent Events server built on sse-starlette (Starlette, uvicorn),
for tests/sse.rs.

usage: python sse_server.py [PORT]   (0 or none: a free port)

Listens on 127.0.0.1 and prints `LISTENING <port>` as its first line.
Exits when its stdin closes (the test ended) or after 10 minutes.

Routes:
  GET  /ticks    three events "tick" with ids counting on from the request's
                 Last-Event-ID (0 without one), two data lines each, the
                 first with retry: 200; then the stream ends. A comment
                 (sse-starlette's ping) every 0.2 s in between.
  POST /echo     one event "echo" whose data is the request body, then a
                 slow stream of comments only (pings) until the client goes.
  GET  /private  401 unless `Authorization: Bearer good`; then one event
                 "welcome" and the stream stays open (pings).
  GET  /gone     204 No Content.
"""

import asyncio
import os
import socket
import sys
import threading

import uvicorn
from sse_starlette.sse import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

LIFETIME_S = 10 * 60


async def ticks(request):
    try:
        last = int(request.headers.get("last-event-id", "0"))
    except ValueError:
        last = 0

    async def stream():
        for n in range(last + 1, last + 4):
            await asyncio.sleep(0.05)
            yield ServerSentEvent(
                data=f"tick {n}\nsecond line",
                event="tick",
                id=str(n),
                retry=200 if n == last + 1 else None,
            )

    return EventSourceResponse(stream(), ping=0.2)


async def echo(request):
    body = (await request.body()).decode()

    async def stream():
        yield ServerSentEvent(data=body, event="echo")
        while True:
            await asyncio.sleep(3600)

    return EventSourceResponse(stream(), ping=0.2)


async def private(request):
    if request.headers.get("authorization") != "Bearer good":
        return Response(status_code=401)

    async def stream():
        yield ServerSentEvent(data="hello", event="welcome")
        while True:
            await asyncio.sleep(3600)

    return EventSourceResponse(stream(), ping=0.2)


async def gone(_request):
    return Response(status_code=204)


app = Starlette(
    routes=[
        Route("/ticks", ticks),
        Route("/echo", echo, methods=["POST"]),
        Route("/private", private),
        Route("/gone", gone),
    ]
)


def exit_when_stdin_closes():
    sys.stdin.read()
    os._exit(0)


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    # Listening before the line is printed: the client may connect at once.
    sock.listen(128)
    print(f"LISTENING {sock.getsockname()[1]}", flush=True)
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    threading.Timer(LIFETIME_S, lambda: os._exit(0)).start()
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
