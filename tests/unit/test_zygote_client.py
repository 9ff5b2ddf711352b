"""The daemon's side of the zygote channel, against a fake zygote on a socketpair."""

from __future__ import annotations

import asyncio
import json
import os
import socket

from hearth.zygote.client import Zygote


async def test_a_burst_of_forks_waits_for_the_zygote_instead_of_failing():
    """A socket's send buffer holds a few hundred kB of requests (each with its spec and
    two descriptors): a burst larger than that must wait its turn, never fail with EAGAIN."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    theirs.sendall(json.dumps({"op": "ready", "pid": 1}).encode())
    zygote = Zygote("fake", on_exit=lambda z, pid, code: None)
    await zygote._attach(ours)

    async def slow_zygote() -> int:
        """Answer every request, one at a time, only after the burst was sent."""
        loop = asyncio.get_running_loop()
        theirs.setblocking(False)
        await asyncio.sleep(0.2)
        answered = 0
        while answered < 200:
            data = await loop.sock_recv(theirs, 65536)
            request = json.loads(data)
            await loop.sock_sendall(
                theirs, json.dumps({"op": "forked", "id": request["id"], "pid": 1000}).encode()
            )
            answered += 1
        return answered

    peer = asyncio.ensure_future(slow_zygote())
    r, w = os.pipe()
    spec = {"env": {"PAD": "x" * 4000}}  # a spec with a few secrets in its environment
    pids = await asyncio.gather(*(zygote.fork(spec, [r, w]) for _ in range(200)))
    os.close(r)
    os.close(w)
    assert pids == [1000] * 200
    assert await peer == 200
    zygote.kill()
    theirs.close()
