"""Run a program under a policy: `python -m hearth.sandbox.run POLICY_JSON PROGRAM ARGS...`.

For what the daemon starts as a new program rather than forks from a zygote: environment
builds (`uv`, and the new environment's Python), which run a package's own code (an
sdist's setup.py, a .pth file) and so are a tenant's code, and a function's key-value
server. The program dies with the daemon, however the daemon ends.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys

from hearth.sandbox.apply import SANDBOX_FAILURE, SandboxError, apply
from hearth.sandbox.policy import Policy

PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> None:
    parent = os.getppid()
    policy = Policy.from_dict(json.loads(argv[0]))
    try:
        apply(policy)
    except SandboxError as exc:
        print(f"sandbox: {exc}", file=sys.stderr, flush=True)
        os._exit(SANDBOX_FAILURE)
    # Set after the identity switch, which clears it; kept across exec.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the daemon died before the line above
        os._exit(SANDBOX_FAILURE)
    os.execvpe(argv[1], argv[1:], policy.env)


if __name__ == "__main__":
    main(sys.argv[1:])
