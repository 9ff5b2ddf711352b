"""The same query, but connecting per request, as a context-per-request platform forces."""

import os

import psycopg
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def query(request):
    async with await psycopg.AsyncConnection.connect(os.environ["DATABASE_URL"]) as conn:
        cur = await conn.execute("select 1")
        (value,) = await cur.fetchone()
    return PlainTextResponse(str(value))


app = Starlette(routes=[Route("/", query)])
