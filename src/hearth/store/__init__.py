"""Durable state: SQLite for functions, versions, events and tokens; bundles by sha256."""

from hearth.store.bundles import BundleStore
from hearth.store.db import Store, VersionRow

__all__ = ["BundleStore", "Store", "VersionRow"]
