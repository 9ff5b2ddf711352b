"""One `select 1` per request on a pool opened at startup (the context Hearth keeps warm)."""

import contextlib
import os

from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route


@contextlib.asynccontextmanager
async def lifespan(app):
    async with AsyncConnectionPool(os.environ["DATABASE_URL"], min_size=4, max_size=8) as pool:
        app.state.pool = pool
        yield


async def query(request):
    async with request.app.state.pool.connection() as conn:
        cur = await conn.execute("select 1")
        (value,) = await cur.fetchone()
    return PlainTextResponse(str(value))


app = Starlette(routes=[Route("/", query)], lifespan=lifespan)
