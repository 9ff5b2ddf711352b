"""The control plane, assembled: the inbox and its reconciler, the rollouts that change
what serves, keys and secrets, and the views the API reads."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from hearth.builder.envs import EnvBuilder
from hearth.config import DaemonConfig
from hearth.control.inbox import Inbox, Tick
from hearth.control.ports import KeyValue, Router, Runner
from hearth.control.reconciler import Reconciler
from hearth.control.rollout import Rollouts
from hearth.control.secrets import Secrets
from hearth.control.views import Views
from hearth.metrics import Tally
from hearth.sandbox.disks import Disks
from hearth.store import BundleStore, Store, Vault
from hearth.supervisor import LogBook


class ControlPlane:
    def __init__(
        self,
        config: DaemonConfig,
        store: Store,
        bundles: BundleStore,
        envs: EnvBuilder,
        runner: Runner,
        router: Router,
        logs: LogBook,
        vault: Vault | None = None,
        forget: Callable[[str, bool], Path | None] = lambda name, purge: None,
        disks: Disks | None = None,
        tally: Tally | None = None,
        kv: KeyValue | None = None,
    ) -> None:
        self.store = store
        self.logs = logs
        self.kv = kv
        self.inbox = Inbox()
        self.reconciler = Reconciler(store, runner, router, self.inbox, tally=tally)
        self.secrets = Secrets(store, vault, self.reconciler.functions)
        self.rollouts = Rollouts(
            config, store, bundles, envs, self.reconciler, self.secrets, logs, forget, disks, kv
        )
        self.secrets.roll = self.rollouts.roll
        self.views = Views(config, store, self.reconciler)
        self.config = config

    def __repr__(self) -> str:
        return f"<ControlPlane {self.reconciler!r}>"

    @property
    def config(self) -> DaemonConfig:
        return self._config

    @config.setter
    def config(self, config: DaemonConfig) -> None:
        """Known in full only once the daemon listens (ports chosen by the system)."""
        self._config = self.rollouts.config = self.views.config = config

    async def run(self, tick: float = 1.0) -> None:
        """The reconciler's loop, and a tick every `tick` seconds, until cancelled."""
        ticker = asyncio.ensure_future(self._tick_forever(tick))
        try:
            await self.reconciler.run()
        finally:
            ticker.cancel()

    async def _tick_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.inbox.post(Tick())

    async def shutdown(self) -> None:
        await self.reconciler.shutdown()
        if self.kv is not None:
            await self.kv.close()

    def kv_snapshot(self, function: str) -> Path | None:
        """For backups: a snapshot of the function's running KV server (from a thread)."""
        return self.kv.snapshot(function) if self.kv is not None else None
