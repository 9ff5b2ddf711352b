"""A cold-start subject: imports starlette and psycopg, opens a one-connection pool in setup."""

import os

from psycopg_pool import ConnectionPool
from starlette.responses import PlainTextResponse

pool = None


def setup():
    global pool
    pool = ConnectionPool(os.environ["DATABASE_URL"], min_size=1, max_size=1, open=True)
    pool.wait(timeout=10)


def teardown():
    pool.close()


def handle(request):
    with pool.connection() as conn:
        conn.execute("select 1")
    return PlainTextResponse("heavy")
