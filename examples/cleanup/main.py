"""A scheduled cleanup. Hearth calls `POST /tasks/cleanup` every minute (`[[schedule]]` in
hearth.toml): it removes uploads older than an hour from HEARTH_DATA/tmp-uploads and adds a
line to HEARTH_DATA/cleanup-runs; `GET /` shows how many runs there were.

Nothing here imports Hearth: under plain uvicorn (`uvicorn main:app`) the data folder is
./data beside this file, and `curl -X POST localhost:8000/tasks/cleanup` is the schedule.
"""

import os
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

DATA = Path(os.environ.get("HEARTH_DATA") or Path(__file__).parent / "data")
UPLOADS = DATA / "tmp-uploads"
RUNS = DATA / "cleanup-runs"
MAX_AGE = 3600.0  # seconds


def sweep(now: float) -> int:
    """Remove the files in UPLOADS last changed more than MAX_AGE ago; how many went."""
    removed = 0
    UPLOADS.mkdir(parents=True, exist_ok=True)
    with os.scandir(UPLOADS) as entries:
        for entry in entries:
            # Links and folders are left alone: only plain files are uploads.
            if not entry.is_file(follow_symlinks=False):
                continue
            if now - entry.stat(follow_symlinks=False).st_mtime > MAX_AGE:
                try:
                    os.unlink(entry.path)
                    removed += 1
                except FileNotFoundError:  # removed by someone else meanwhile
                    pass
    return removed


def runs() -> int:
    try:
        with RUNS.open() as lines:
            return sum(1 for _ in lines)
    except FileNotFoundError:
        return 0


async def cleanup(request: Request) -> JSONResponse:
    now = time.time()
    removed = sweep(now)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    with RUNS.open("a") as log:  # one line per run: appends of a line do not interleave
        log.write(f"{stamp} removed {removed}\n")
    schedule = request.headers.get("x-hearth-schedule")  # absent when called by hand
    return JSONResponse({"removed": removed, "runs": runs(), "schedule": schedule})


async def home(request: Request) -> JSONResponse:
    UPLOADS.mkdir(parents=True, exist_ok=True)
    waiting = sum(1 for entry in UPLOADS.iterdir() if entry.is_file())
    return JSONResponse({"runs": runs(), "uploads": waiting})


app = Starlette(
    routes=[Route("/", home), Route("/tasks/cleanup", cleanup, methods=["POST"])],
)
