"""The control plane, assembled: the inbox and its reconciler, the rollouts that change
what serves, keys and secrets, and the views the API reads."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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
from hearth.store import backup as backups
from hearth.store.copy import copy_folder
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
        copier: Callable[[str, int, Path, Path], list[str]] | None = None,
    ) -> None:
        self.store = store
        self.logs = logs
        self.kv = kv
        # How a backup copies a function's data folder: (name, identity, folder, target).
        self.copier = copier or (
            lambda name, number, folder, target: copy_folder(folder, target, name)
        )
        # Backups run one at a time, in a thread of their own at the lowest CPU priority
        # (and so do the processes it starts): serving comes first.
        self._backups = ThreadPoolExecutor(1, "backup", initializer=_background)
        self.inbox = Inbox()
        self.reconciler = Reconciler(store, runner, router, self.inbox, tally=tally)
        self.secrets = Secrets(store, vault, self.reconciler.functions)
        self.rollouts = Rollouts(
            config, store, bundles, envs, self.reconciler, self.secrets, logs, forget, disks, kv
        )
        self.secrets.roll = self.rollouts.roll
        self.views = Views(config, store, self.reconciler, kv)
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

    async def backup(self, out: Path) -> backups.Taken:
        """One archive of everything into `out`, taken in a thread while serving."""
        functions = [name for name, _ in self.store.functions()]
        numbers = {name: self.store.identity(name) for name in functions}

        def copier(function: str, folder: Path, target: Path) -> list[str]:
            return self.copier(function, numbers[function], folder, target)

        def snapshot(function: str) -> Path | None:
            return self.kv.snapshot(function) if self.kv is not None else None

        take = functools.partial(
            backups.take, self.config.data_dir, functions, out, snapshot, copier
        )
        return await asyncio.get_running_loop().run_in_executor(self._backups, take)


def _copy_here(name: str, number: int, folder: Path, target: Path) -> list[str]:
    """A backup's copy of a function's data, in the daemon's own process (no sandbox)."""
    return copy_folder(folder, target, name)


BACKGROUND = 19  # the nice value of the backup thread


def _background() -> None:
    with contextlib.suppress(OSError):  # Linux: a thread's own priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND)
