"""A function's invoke keys and secrets: stored (secrets sealed), handed to its route and
its releases; changing a secret rolls the function's instances."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from hearth.control.errors import DeployError
from hearth.control.model import Function
from hearth.spec import MAX_ENV_KEYS
from hearth.store import Store, Vault, VaultError
from hearth.supervisor import StartError


class Secrets:
    def __init__(
        self,
        store: Store,
        vault: Vault | None,
        functions: dict[str, Function],
    ) -> None:
        self.store = store
        self.vault = vault
        self.functions = functions  # the reconciler's: keys reach a serving route at once
        # Set by the wiring: replace a function's instances (the rollouts' `roll`).
        self.roll: Callable[[str, str], Awaitable[bool]] | None = None

    # keys of private functions

    def create_key(self, name: str) -> dict[str, Any]:
        key = secrets.token_urlsafe(32)
        row = self.store.add_key(name, key)
        self._keys_changed(name)
        self.store.event(name, "keys", f"key {row['id']} created")
        return {**row, "function": name, "key": key}

    def revoke_key(self, name: str, key_id: str) -> bool:
        if not self.store.revoke_key(name, key_id):
            return False
        self._keys_changed(name)
        self.store.event(name, "keys", f"key {key_id} revoked")
        return True

    def _keys_changed(self, name: str) -> None:
        function = self.functions.get(name)
        if function is not None:
            function.access.keys = self.store.key_hashes(name)

    # secrets

    async def set_secret(self, name: str, key: str, value: str) -> dict[str, Any]:
        """Store a secret (sealed) and roll the function's instances if it changed."""
        vault = self._vault()
        names = {row["name"] for row in self.store.secret_names(name)}
        if key not in names and len(names) >= MAX_ENV_KEYS:
            raise DeployError(f"{name} has {len(names)} secrets, the most allowed; remove one")
        try:
            before = self.opened(name).get(key)
        except StartError:
            before = None  # what does not open is replaced
        nonce, sealed = vault.seal(name, key, value)
        updated = self.store.put_secret(name, key, nonce, sealed)
        rolled = before != value and await self._roll(name)
        return {"function": name, "name": key, "updated": updated, "rolled": rolled}

    async def remove_secret(self, name: str, key: str) -> dict[str, Any] | None:
        if not self.store.delete_secret(name, key):
            return None
        rolled = await self._roll(name)
        return {"function": name, "removed": key, "rolled": rolled}

    async def _roll(self, name: str) -> bool:
        return await self.roll(name, "secrets changed") if self.roll is not None else False

    def opened(self, name: str) -> dict[str, str]:
        """The function's secrets, opened; a StartError if they do not open."""
        rows = self.store.sealed_secrets(name)
        if not rows:
            return {}
        try:
            vault = self._vault()
            return {key: vault.open(name, key, nonce, sealed) for _, key, nonce, sealed in rows}
        except (DeployError, VaultError) as exc:
            raise StartError(str(exc)) from exc

    def _vault(self) -> Vault:
        if self.vault is None:
            raise DeployError("this daemon was started without a secret key; secrets are off")
        return self.vault
