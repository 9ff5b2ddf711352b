"""Zygote processes: import once, then fork.

There are two kinds, one program. The root zygote runs only Hearth's own code, as the
daemon's user: it imports the runtime and forks one *version zygote* per serving version
of a function. That child applies the function's sandbox (hearth.sandbox) before anything
of the function's is loaded, then either goes on as a zygote in the same interpreter (the
base environment) or execs the environment's Python (a function with requirements), which
imports the environment's packages under the sandbox. Instances are forked from their
version's zygote and inherit every layer of its sandbox, so a cold start pays for none.

The daemon talks to each zygote over a SOCK_SEQPACKET socket, one JSON message a packet:

    daemon -> root      {"op": "spawn", "id": 3, "policy": {...}, "exec": null | {...}}
                        + fds [the new zygote's socket]
    daemon -> version   {"op": "fork", "id": 7, "spec": {...}}   + fds [log, status]
    zygote -> daemon    {"op": "ready", "pid": 123}
                        {"op": "spawned", "id": 3, "pid": 455} | {"op": "forked", "id": 7, ...}
                        {"op": "exit", "pid": 456, "code": 0}    (negative: killed by signal)

A zygote exits when the daemon's end of its socket or the lifeline closes. Instances
survive their zygote's death (they watch the lifeline, not the zygote).
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import selectors
import signal
import socket
import sys
from typing import Any

RUNTIME_MODULES = (
    "hearth.runtime.serve",
    "hearth.sandbox.apply",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.lifespan.on",
    "uvicorn.protocols.websockets.auto",
    "importlib.util",
    "uvicorn.loops.uvloop",
    "uvloop",
    "starlette.applications",  # most ASGI functions are Starlette or FastAPI apps
    "starlette.routing",
    "starlette.requests",
    "starlette.responses",
    "starlette.concurrency",
    "anyio._backends._asyncio",
)
# What an exec'd version zygote runs: `-I -S` keeps the environment's .pth files (code a
# package may ship) from running before the sandbox; they run here, after it.
BOOTSTRAP = (
    "import site, sys; site.addsitedir(sys.argv[1]); "
    "from hearth.zygote.process import main; main(sys.argv[2:])"
)


def main(argv: list[str]) -> None:
    """`python -m hearth.zygote CTL_FD LIFELINE_FD [PRELOAD_JSON]`."""
    ctl = socket.socket(fileno=int(argv[0]))
    lifeline = int(argv[1])
    extra = json.loads(argv[2]) if len(argv) > 2 else []
    preload([*RUNTIME_MODULES, *extra])
    serve(ctl, lifeline)


def serve(ctl: socket.socket, lifeline: int) -> None:
    """Answer fork and spawn requests until the daemon goes away."""
    # Objects that exist now are shared with every child; keep the collector off them so
    # their pages are never written to (and copied) by a child.
    gc.collect()
    gc.freeze()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    selector = selectors.DefaultSelector()
    selector.register(ctl, selectors.EVENT_READ, "ctl")
    selector.register(wake_r, selectors.EVENT_READ, "wake")
    selector.register(lifeline, selectors.EVENT_READ, "lifeline")
    _send(ctl, {"op": "ready", "pid": os.getpid()})
    while True:
        for key, _ in selector.select():
            if key.data == "wake":
                os.read(wake_r, 512)
                _reap(ctl)
            elif key.data == "lifeline":
                os._exit(0)
            else:
                try:
                    data, fds, _flags, _addr = socket.recv_fds(ctl, 1 << 20, 8)
                except ConnectionError:
                    os._exit(0)
                if not data:
                    os._exit(0)
                request = json.loads(data)
                wake = (wake_r, wake_w)
                if request["op"] == "spawn":
                    _spawn(ctl, request, fds, wake, lifeline, selector)
                else:
                    _fork(ctl, request, fds, wake, lifeline)


def preload(modules: list[str]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # a package that fails at import must not stop the zygote
            print(f"zygote: could not preload {name}: {exc!r}", file=sys.stderr, flush=True)


def _spawn(
    ctl: socket.socket,
    request: dict[str, Any],
    fds: list[int],
    wake: tuple[int, int],
    lifeline: int,
    selector: selectors.BaseSelector,
) -> None:
    """Fork a version zygote: sandbox first, then its own loop (or its environment's Python)."""
    (child_ctl,) = fds
    pid = os.fork()
    if pid == 0:
        try:
            _become_zygote(ctl, wake, selector)
            from hearth.sandbox import SANDBOX_FAILURE, Policy, SandboxError, apply

            policy = Policy.from_dict(request["policy"])
            try:
                apply(policy)
            except SandboxError as exc:
                print(f"zygote: {exc}", file=sys.stderr, flush=True)
                os._exit(SANDBOX_FAILURE)
            # Nothing of the daemon's own environment reaches a function.
            os.environ.clear()
            os.environ.update(policy.env)
            spawn = request.get("exec")
            if spawn:
                os.set_inheritable(child_ctl, True)
                os.set_inheritable(lifeline, True)
                argv = [spawn["python"], "-I", "-S", "-c", BOOTSTRAP, spawn["site"]]
                argv += [str(child_ctl), str(lifeline), json.dumps(spawn["preload"])]
                os.execve(spawn["python"], argv, policy.env)
            serve(socket.socket(fileno=child_ctl), lifeline)
        finally:
            os._exit(1)
    os.close(child_ctl)
    _send(ctl, {"op": "spawned", "id": request["id"], "pid": pid})


def _become_zygote(
    ctl: socket.socket, wake: tuple[int, int], selector: selectors.BaseSelector
) -> None:
    signal.set_wakeup_fd(-1)
    selector.close()
    ctl.close()
    os.close(wake[0])
    os.close(wake[1])


def _fork(
    ctl: socket.socket,
    request: dict[str, Any],
    fds: list[int],
    wake: tuple[int, int],
    lifeline: int,
) -> None:
    log_fd, status_fd = fds
    pid = os.fork()
    if pid == 0:
        try:
            _become_instance(ctl, wake, log_fd)
            from hearth.runtime.serve import run

            run(request["spec"], status_fd, lifeline)
        finally:
            os._exit(1)
    os.close(log_fd)
    os.close(status_fd)
    _send(ctl, {"op": "forked", "id": request["id"], "pid": pid})


def _become_instance(ctl: socket.socket, wake: tuple[int, int], log_fd: int) -> None:
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    ctl.close()
    os.close(wake[0])
    os.close(wake[1])
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]


def _reap(ctl: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        code = os.waitstatus_to_exitcode(status)
        _send(ctl, {"op": "exit", "pid": pid, "code": code})


def _send(ctl: socket.socket, message: dict[str, Any]) -> None:
    try:
        ctl.send(json.dumps(message).encode())
    except OSError:
        os._exit(0)  # the daemon is gone
