"""A counter all instances share, in Redis: with `[kv] enabled = true` Hearth gives the
function a Redis of its own and its address in REDIS_URL. Plain redis-py, no Hearth
import: it runs as it is under uvicorn with any Redis (`REDIS_URL=redis://localhost:6379
uvicorn main:app`).
"""

import os

import redis.asyncio as redis
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

# One pool per instance, opened once and kept warm across requests.
store = redis.from_url(os.environ.get("REDIS_URL", "redis://localhost:6379/0"))
INSTANCE = os.environ.get("HEARTH_INSTANCE", str(os.getpid()))


async def hit(request):
    count = await store.incr("hits")
    await store.hincrby("by-instance", INSTANCE, 1)
    return JSONResponse({"hits": count, "instance": INSTANCE})


async def count(request):
    hits = int(await store.get("hits") or 0)
    shares = {k.decode(): int(v) for k, v in (await store.hgetall("by-instance")).items()}
    return JSONResponse({"hits": hits, "by_instance": shares})


app = Starlette(routes=[Route("/", count), Route("/hit", hit, methods=["POST"])])
