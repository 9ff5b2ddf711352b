"""Managed key-value stores: a Redis of each function's own (`[kv] enabled = true`)."""

from hearth.kv.keeper import MISSING, Keeper, find_server
from hearth.kv.server import KvError, Server, Settings

__all__ = ["MISSING", "Keeper", "KvError", "Server", "Settings", "find_server"]
