"""Waits 200 ms per request, as a handler waiting on a database or an API would: what
limits it is concurrency, not CPU, so the autoscaler's answer shows."""

import asyncio


async def handle(request):
    await asyncio.sleep(0.2)
    return "done\n"
