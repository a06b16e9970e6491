"""The benchmark's Python client: `websockets` (PyPI, asyncio API), run by
examples/bench.rs.

    python client.py URL RTT PIPE PIPE_WINDOW LARGE LARGE_WINDOW

Speaks the protocol of every benchmark client (bench/README.md): each
workload once at a tenth of its size (warm-up), then measured; one JSON line
per result on stdout. A wrong or missing echo exits non-zero.
"""

import asyncio
import json
import resource
import sys
import time

import websockets
from websockets.asyncio.client import connect

SMALL = 64
LARGE = 1 << 20
LIMIT = 120.0
TEXT = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"
BIG = bytes(i % 251 for i in range(LARGE))


def emit(value):
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


def cpu_secs():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def check(message, size):
    if size == SMALL:
        if not isinstance(message, str) or message != TEXT:
            raise AssertionError("echo of the wrong kind or with other bytes")
    elif (
        not isinstance(message, bytes)
        or len(message) != size
        or message[0] != BIG[0]
        or message[-1] != BIG[-1]
    ):
        raise AssertionError("echo of the wrong kind, length or bytes")


def open_connection(url):
    return connect(
        url,
        compression=None,
        max_size=None,
        ping_interval=None,
        open_timeout=LIMIT,
    )


async def round_trips(url, n):
    samples = []
    async with open_connection(url) as ws:
        for _ in range(n):
            t0 = time.perf_counter_ns()
            await ws.send(TEXT)
            message = await ws.recv()
            samples.append((time.perf_counter_ns() - t0) / 1e3)
            check(message, SMALL)
    return samples


async def stream(url, size, n, window):
    payload = TEXT if size == SMALL else BIG
    async with open_connection(url) as ws:
        room = asyncio.Semaphore(window)

        async def writer():
            for _ in range(n):
                await room.acquire()
                await ws.send(payload)

        start = time.perf_counter()
        task = asyncio.ensure_future(writer())
        for _ in range(n):
            check(await ws.recv(), size)
            room.release()
        await task
        return time.perf_counter() - start


async def main(argv):
    if len(argv) != 6:
        sys.exit("usage: client.py URL RTT PIPE PIPE_WINDOW LARGE LARGE_WINDOW")
    url = argv[0]
    rtt, pipe, pipe_window, large, large_window = (int(a) for a in argv[1:])
    emit(
        {
            "version": "websockets %s (Python %s)"
            % (websockets.__version__, sys.version.split()[0])
        }
    )

    def warm(n):
        return max(1, n // 10)

    async def bounded(coroutine):
        return await asyncio.wait_for(coroutine, LIMIT)

    await bounded(round_trips(url, warm(rtt)))
    await bounded(stream(url, SMALL, warm(pipe), pipe_window))
    await bounded(stream(url, LARGE, warm(large), large_window))

    s = sorted(await bounded(round_trips(url, rtt)))
    emit(
        {
            "workload": "rtt",
            "n": rtt,
            "p50_us": s[rtt // 2],
            "p99_us": s[min(rtt - 1, rtt * 99 // 100)],
        }
    )
    for workload, size, n, window in (
        ("pipelined", SMALL, pipe, pipe_window),
        ("large", LARGE, large, large_window),
    ):
        cpu = cpu_secs()
        secs = await bounded(stream(url, size, n, window))
        emit({"workload": workload, "n": n, "secs": secs, "cpu_secs": cpu_secs() - cpu})


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
