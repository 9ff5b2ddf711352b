"""An ASGI app with a PostgreSQL connection pool opened once, at startup, and kept warm."""

import contextlib
import os

from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


@contextlib.asynccontextmanager
async def lifespan(app):
    pool = AsyncConnectionPool(os.environ["DATABASE_URL"], min_size=1, max_size=4, open=False)
    await pool.open(wait=True, timeout=10)
    async with pool.connection() as conn:
        await conn.execute(
            "create table if not exists pg_visits (id int primary key, count bigint not null)"
        )
        await conn.execute("insert into pg_visits values (1, 0) on conflict do nothing")
    app.state.pool = pool
    yield
    await pool.close()


async def home(request):
    async with request.app.state.pool.connection() as conn:
        cur = await conn.execute(
            "update pg_visits set count = count + 1 where id = 1 returning count"
        )
        (count,) = await cur.fetchone()
    return JSONResponse({"visits": count, "pid": os.getpid()})


async def ping(request):
    async with request.app.state.pool.connection() as conn:
        await conn.execute("select 1")
    return JSONResponse({"ok": True})


app = Starlette(routes=[Route("/", home), Route("/ping", ping)], lifespan=lifespan)
