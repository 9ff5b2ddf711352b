"""Isolation of a function's processes: identity, filesystem, system calls, resources."""

from hearth.sandbox.apply import SANDBOX_FAILURE, SandboxError, apply
from hearth.sandbox.policy import Policy

__all__ = ["SANDBOX_FAILURE", "Policy", "SandboxError", "apply"]
