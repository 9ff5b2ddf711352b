"""Durable state: SQLite for functions, versions, events, tokens, keys and sealed secrets;
bundles by sha256; the vault that seals secrets."""

from hearth.store.bundles import BundleStore
from hearth.store.db import ScheduleRow, Store, VersionRow
from hearth.store.vault import Vault, VaultError

__all__ = ["BundleStore", "ScheduleRow", "Store", "Vault", "VaultError", "VersionRow"]
