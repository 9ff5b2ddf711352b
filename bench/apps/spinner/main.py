"""A noisy neighbour: each request starts `workers` processes that keep a core busy for
`seconds`, then answers at once."""

import os
import time


def handle(request):
    seconds = min(float(request.query_params.get("seconds", "10")), 120.0)
    workers = min(int(request.query_params.get("workers", "4")), 16)
    for _ in range(workers):
        if os.fork() == 0:
            if os.fork() == 0:  # the grandchild burns; nobody has to wait for it
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    pass
            os._exit(0)
        os.wait()
    return f"burning {workers} cores for {seconds:g}s"
