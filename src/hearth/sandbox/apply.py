"""Apply a Policy to the current process: once, in a fixed order, failing closed.

Like Android's zygote specialising a child, every layer is applied after fork and before
any of the function's code runs, from the most to the least privileged step: resource
limits, namespaces and mounts (need root), the identity switch (drops root and every
capability), no_new_privs with Landlock, and last the seccomp filter (which forbids what
the earlier steps used). A step that fails raises: the caller must exit, never run the
function half-sandboxed.
"""

from __future__ import annotations

import os
import resource

from hearth.sandbox import cgroups, landlock, mounts, seccomp
from hearth.sandbox.policy import Policy

SANDBOX_FAILURE = 5  # exit code of a child that could not apply its policy


class SandboxError(RuntimeError):
    """The policy could not be applied in full."""


def apply(policy: Policy) -> None:
    try:
        for limit, value in policy.rlimits:
            resource.setrlimit(limit, (value, value))
        cgroups.join(policy.cgroups)
        if policy.mounts:
            mounts.private_view((*policy.read, *policy.write))
        if not policy.network:
            mounts.unshare(mounts.CLONE_NEWNET)
        if policy.uid is not None and policy.gid is not None:
            _become(policy.uid, policy.gid)
        if policy.landlock:
            landlock.restrict(policy.read, policy.write, policy.landlock)
        if policy.seccomp:
            seccomp.deny()
    except (OSError, ValueError) as exc:
        raise SandboxError(f"could not apply the sandbox: {exc}") from exc


def _become(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)  # from root to another uid: every capability is dropped
    try:
        os.setuid(0)
    except PermissionError:
        return
    raise SandboxError("the process could become root again after dropping its identity")
