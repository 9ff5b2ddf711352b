"""WebSocket round trips: CLIENTS connections, each sending a message and awaiting its
echo, one at a time, for SECONDS; round trips per second and latency percentiles.

    python bench/ws.py URL CLIENTS SECONDS   # prints one JSON line
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from websockets.asyncio.client import connect


async def client(url: str, until: float, times: list[float]) -> int:
    done = 0
    async with connect(url, compression=None, max_size=None) as ws:
        while time.perf_counter() < until:
            began = time.perf_counter()
            await ws.send("ping: 32 bytes of text, no more.")
            await ws.recv()
            times.append(time.perf_counter() - began)
            done += 1
    return done


async def main(url: str, clients: int, seconds: float) -> dict[str, float]:
    times: list[float] = []
    until = time.perf_counter() + seconds
    counts = await asyncio.gather(*(client(url, until, times) for _ in range(clients)))
    times.sort()

    def pct(p: float) -> float:
        return round(1000 * times[min(len(times) - 1, int(p / 100 * len(times)))], 3)

    return {
        "round_trips_per_s": round(sum(counts) / seconds, 1),
        "p50_ms": pct(50),
        "p99_ms": pct(99),
    }


if __name__ == "__main__":
    url, clients, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    print(json.dumps(asyncio.run(main(url, clients, seconds))))
