"""What the API shows of functions: read from the store and the reconciler's records,
never changing either."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hearth.config import DaemonConfig
from hearth.control.errors import NotFound
from hearth.control.ports import KeyValue
from hearth.control.reconciler import Reconciler
from hearth.store import Store


class Views:
    def __init__(
        self,
        config: DaemonConfig,
        store: Store,
        reconciler: Reconciler,
        kv: KeyValue | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.reconciler = reconciler
        self.kv = kv

    def overview(self, shown: Callable[[str], bool] = lambda name: True) -> list[dict[str, Any]]:
        return [
            self.describe(name, brief=True) for name, _ in self.store.functions() if shown(name)
        ]

    def describe(self, name: str, brief: bool = False) -> dict[str, Any]:
        active = self.store.active_version(name)
        if active is None and not self.store.exists(name):
            raise NotFound(name)
        function = self.reconciler.functions.get(name)
        releases = function.releases if function else {}
        traffic = self.store.traffic(name)
        info: dict[str, Any] = {
            "name": name,
            "version": active,
            "traffic": {str(k): v for k, v in traffic.items()},
            "urls": self.config.function_urls(name),
            "instances": self.instances(name),
            "starting": sum(r.starting for r in releases.values()),
            "queued": sum(len(r.pool.waiters) for r in releases.values()),
        }
        if brief:
            return info
        main = releases.get(active) if active is not None else None
        info["spec"] = main.spec.to_dict() if main else None
        info["env"] = main.env.key if main else None
        info["last_error"] = function.last_error if function else None
        retry_in = function.retry_in() if function else 0.0
        info["next_try_in"] = round(retry_in, 3) if retry_in > 0 else None
        info["versions"] = self.versions(name)
        info["kv"] = self.kv.describe(name) if self.kv is not None else None
        return info

    def instances(self, name: str) -> list[dict[str, Any]]:
        """Every live instance of the function: starting, ready or draining."""
        live = [i for i in self.reconciler.runner.instances.values() if i.function == name]
        shown = []
        for instance in sorted(live, key=lambda i: i.started):
            replica = self.reconciler.replicas.get(instance.id)
            shown.append(replica.describe() if replica else instance.describe())
        return shown

    def versions(self, name: str) -> list[dict[str, Any]]:
        if not self.store.exists(name):
            raise NotFound(name)
        traffic = self.store.traffic(name)
        total = sum(traffic.values()) or 1
        rows = []
        for v in self.store.versions(name):
            share = traffic.get(v.number, 0)
            status = "serving" if share else ("failed" if v.status == "failed" else v.status)
            rows.append(
                {
                    "number": v.number,
                    "status": status,
                    "traffic": round(100 * share / total, 1),
                    "created": v.created,
                    "bundle": v.bundle,
                    "error": v.error,
                }
            )
        return rows
