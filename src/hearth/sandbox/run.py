"""Run a program under a policy: `python -m hearth.sandbox.run POLICY_JSON PROGRAM ARGS...`.

For what the daemon starts as a new program rather than forks from a zygote: environment
builds (`uv`, and the new environment's Python), which run a package's own code (an
sdist's setup.py, a .pth file) and so are a tenant's code.
"""

from __future__ import annotations

import json
import os
import sys

from hearth.sandbox.apply import SANDBOX_FAILURE, SandboxError, apply
from hearth.sandbox.policy import Policy


def main(argv: list[str]) -> None:
    policy = Policy.from_dict(json.loads(argv[0]))
    try:
        apply(policy)
    except SandboxError as exc:
        print(f"sandbox: {exc}", file=sys.stderr, flush=True)
        os._exit(SANDBOX_FAILURE)
    os.execvpe(argv[1], argv[1:], policy.env)


if __name__ == "__main__":
    main(sys.argv[1:])
