"""An ASGI app whose in-memory counter lives as long as the instance: context persists."""

import os

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

visits = 0


async def home(request):
    global visits
    visits += 1
    return JSONResponse({"visits": visits, "pid": os.getpid()})


app = Starlette(routes=[Route("/", home)])
