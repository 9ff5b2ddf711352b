"""Asynchronous invocations: requests sent with `X-Hearth-Async: 1`, stored before the
gateway answers 202, then replayed through the gateway by a worker of the daemon, with
retries, a result kept for a while, and an optional callback."""

from hearth.invocations.model import ID, Invocation, new_id
from hearth.invocations.store import InvocationStore
from hearth.invocations.worker import Invocations

__all__ = ["ID", "Invocation", "InvocationStore", "Invocations", "new_id"]
