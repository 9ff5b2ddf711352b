"""hearthd: build every piece, wire them, serve until a signal, shut down in order."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import resource
import shutil
import signal
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

import uvicorn

from hearth.api import create_app
from hearth.api.access import new_token
from hearth.builder.bundle import pack
from hearth.builder.envs import EnvBuilder
from hearth.config import DaemonConfig
from hearth.control import ControlPlane, DeployError
from hearth.control.inbox import Exited, LimitHit
from hearth.gateway import Gateway
from hearth.invocations import Invocations, InvocationStore
from hearth.kv import Keeper, find_server
from hearth.metrics import Tally
from hearth.metrics.access import AccessLog
from hearth.metrics.monitor import Monitor
from hearth.sandbox.cgroups import Cgroups
from hearth.sandbox.disks import own_namespace
from hearth.sandbox.plan import BuildJail, Host, Planner, SandboxUnavailable, layers
from hearth.scheduler.call import GatewayCaller
from hearth.scheduler.runner import Scheduler
from hearth.spec import FunctionSpec, folder_name
from hearth.store import BundleStore, Store, Vault, VaultError
from hearth.store import backup as backups
from hearth.store.copy import copy_as, copy_folder
from hearth.store.migrations import SchemaError
from hearth.store.vault import load_key
from hearth.supervisor import LogBook, Supervisor

log = logging.getLogger("hearth")
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes


class DaemonError(RuntimeError):
    """The daemon cannot start; the message says why."""


def lock_data_dir(data_dir: Path) -> IO[str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    handle = (data_dir / "daemon.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        raise DaemonError(
            f"another hearth daemon is using {data_dir} (pid {handle.read().strip() or '?'}); "
            "stop it or choose another --data-dir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def ensure_token(data_dir: Path, store: Store) -> str:
    path = data_dir / "token"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(new_token() + "\n")
    token = path.read_text().strip()
    if not token:
        raise DaemonError(f"{path} is empty: remove it and a new admin token is written")
    store.set_file_token(token)
    return token


def open_vault(data_dir: Path, store: Store, environ: dict[str, str]) -> Vault:
    """The vault for secrets, checked against every stored secret before anything starts."""
    try:
        vault = Vault(load_key(data_dir, environ))
        for function, key, nonce, sealed in store.sealed_secrets():
            vault.open(function, key, nonce, sealed)
    except VaultError as exc:
        raise DaemonError(str(exc)) from exc
    return vault


def run_dir_for(data_dir: Path) -> Path:
    run = data_dir / "run"
    if len(str(run / ("f" * 63) / "i1000000.sock")) <= MAX_SOCKET_PATH:
        shutil.rmtree(run, ignore_errors=True)
        run.mkdir(mode=0o700)
        return run
    return Path(tempfile.mkdtemp(prefix="hearth-"))


def cgroup_scope(data_dir: Path) -> str:
    """The prefix of this daemon's cgroups: one per data directory."""
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
    return f"hearth-{digest}"


def raise_open_files_limit() -> int:
    """Every client, instance connection and pipe is a descriptor: take what the host allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def serve(
    config: DaemonConfig,
    deploy: list[Path],
    say: Callable[[str], None] = print,
    host: Host | None = None,
) -> None:
    data_dir = config.data_dir
    lock = lock_data_dir(data_dir)
    open_files = raise_open_files_limit()
    log.info("open files limit %d", open_files)
    try:
        store = Store(data_dir / "hearth.db")
    except SchemaError as exc:
        raise DaemonError(str(exc)) from exc
    ensure_token(data_dir, store)
    for leftover in data_dir.glob(".backup-*"):  # a backup the last daemon did not finish
        shutil.rmtree(leftover, ignore_errors=True)
    vault = open_vault(data_dir, store, dict(os.environ))
    logs = LogBook(data_dir / "logs")
    access = AccessLog(data_dir / "logs" / "access")
    run_dir = run_dir_for(data_dir)
    gateway = Gateway(config.domain, config.gateway)
    try:
        # Disks need the daemon in a mount namespace of its own, entered by `run`.
        chosen = layers(config.sandbox, host or replace(Host.probe(), disks=False))
    except SandboxUnavailable as exc:
        raise DaemonError(str(exc)) from exc
    cgroups = Cgroups(cgroup_scope(data_dir))
    cgroups.tidy()  # what a killed daemon of this data directory left
    planner = Planner(data_dir, run_dir, chosen, cgroups)
    supervisor = Supervisor(run_dir, logs, planner, store.identity)
    redis_server = find_server(dict(os.environ))
    tally = Tally()

    def forget(name: str, purge: bool) -> Path | None:
        access.forget(name)
        return planner.forget(name, purge)

    plane = ControlPlane(
        config,
        store,
        BundleStore(data_dir),
        EnvBuilder(
            data_dir / "envs",
            index_url=config.index_url,
            jail=BuildJail(planner, data_dir / "cache") if chosen.identity else None,
        ),
        supervisor,
        gateway,
        logs,
        vault,
        forget=forget,
        disks=planner.disks,
        tally=tally,
        kv=Keeper(planner, store.identity, logs, redis_server, on_event=store.event),
        copier=_copier(planner),
    )
    invocations = Invocations(
        InvocationStore(store.db),
        lookup=lambda name: serving_spec(plane, name),
        record=store.event,
        location=lambda invocation: f"{plane.config.api_url}/v1/invocations/{invocation}",
        backoff_base=config.async_backoff,
        private=config.callback_private,
    )
    gateway.defer = invocations.accept  # stored before the 202; run once the worker starts
    gateway.metering = config.metrics
    gateway.keeping = config.access_log or bool(config.otlp)
    access.enabled = config.access_log
    spans = None
    if config.otlp:
        from hearth.metrics.otlp import SpanExport  # the SDK loads only when asked for

        spans = SpanExport(config.otlp)
        gateway.sampled = True
    instances = supervisor.instances.values
    monitor = Monitor(gateway, instances, store, access, tally, spans)
    monitoring = asyncio.ensure_future(monitor.run())
    # The data plane only posts: the reconciler acts on what it hears.
    supervisor.on_exit = lambda instance: plane.inbox.post(Exited(instance))
    supervisor.on_limit = lambda function, message: plane.inbox.post(LimitHit(function, message))
    reconciling = asyncio.ensure_future(plane.run())
    # Runs go to the gateway's own address, known once it listens (see below).
    caller = GatewayCaller(config.gateway_url, gateway.internal)
    scheduler = Scheduler(store, plane.reconciler.functions, caller)

    await gateway.listen(config.host, config.port)
    api = uvicorn.Server(
        uvicorn.Config(
            create_app(plane, store, supervisor, monitor, invocations, scheduler),
            host=config.api_host,
            port=config.api_port,
            lifespan="off",
            log_level="warning",
            access_log=False,
        )
    )
    api.config.load()
    api.lifespan = api.config.lifespan_class(api.config)
    await api.startup()
    if api.should_exit:
        raise DaemonError(f"the API could not listen on {config.api_host}:{config.api_port}")
    api_ticks = asyncio.ensure_future(api.main_loop())
    gateway_port = _port(gateway.server)
    api_port = _port(api.servers[0]) if api.servers else config.api_port
    if gateway_port != config.port or api_port != config.api_port:
        config = _with_ports(config, gateway_port, api_port)
        plane.config = config
        caller.gateway = config.gateway_url

    scheduled = None
    if config.backup_every:
        folder = config.backup_dir or data_dir / "backups"
        scheduled = asyncio.ensure_future(_backups_forever(config, plane, folder))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)  # handlers only record; the loop below acts

    await plane.rollouts.restore()
    scheduler.start()  # after the restore: a tick missed while down runs once, now
    await invocations.start(config.gateway_url, gateway.internal)  # to functions that serve
    _write_state(data_dir, config)
    say(f"hearth: gateway {config.gateway_url}  api {config.api_url}  data {data_dir}")
    say(f"hearth: sandbox {config.sandbox}: {planner.describe()}")
    if redis_server is None:
        say("hearth: no redis-server on this host: functions asking for [kv] are refused")
    for folder in deploy:
        await _deploy_folder(plane, folder, say)
    (data_dir / "ready").write_text(str(os.getpid()))

    await stop.wait()
    say("hearth: shutting down (draining instances)")
    (data_dir / "ready").unlink(missing_ok=True)
    await scheduler.stop()  # no run starts; those in flight finish with the drain
    if gateway.server is not None:
        gateway.server.close()
    await invocations.stop()  # before the drain: its attempts are queued again at next start
    await plane.shutdown()
    await scheduler.close()  # a run the drain did not end is cut, and recorded so
    await caller.close()
    for task in (reconciling, monitoring, *([scheduled] if scheduled else [])):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await monitor.close()  # the last access lines and spans, the minute in progress
    if spans is not None:
        await asyncio.to_thread(spans.close)  # sends what is batched
    await gateway.close()
    api.should_exit = True
    await api_ticks
    await api.shutdown()
    await supervisor.close()
    logs.close()
    store.close()
    if run_dir.parent != data_dir:
        shutil.rmtree(run_dir, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        (data_dir / "daemon.json").unlink()
    lock.close()
    say("hearth: stopped")


def serving_spec(plane: ControlPlane, name: str) -> FunctionSpec | None:
    """The settings of what serves `name` now: its version with the largest share (the
    newest of equals); None when nothing serves it."""
    function = plane.reconciler.functions.get(name)
    if function is None or not function.releases:
        return None
    main = max(function.releases.values(), key=lambda r: (r.pool.weight, r.number))
    return main.spec


def _copier(planner: Planner) -> Callable[[str, int, Path, Path], list[str]]:
    """A backup's copy of a function's data, made by a child as that function (its uid,
    its sandbox): never read as root (`hearth.store.copy`)."""

    def copy(function: str, number: int, folder: Path, target: Path) -> list[str]:
        if not planner.layers.identity:
            return copy_folder(folder, target, function)
        policy = planner.copy_policy(function, number, target)
        return copy_as(policy.to_dict(), folder, target, function)

    return copy


async def _backups_forever(config: DaemonConfig, plane: ControlPlane, folder: Path) -> None:
    """A backup every `backup_every` seconds into `folder`, the newest `backup_keep` kept;
    each one (or its failure, with the reason) is an event of every function."""
    assert config.backup_every is not None
    store = plane.store
    while True:
        await asyncio.sleep(config.backup_every)
        functions = [name for name, _ in store.functions()]
        path = folder / time.strftime(backups.BACKUP_NAME, time.gmtime())
        try:
            taken = await plane.backup(path)
            gone = await asyncio.to_thread(backups.rotate, folder, config.backup_keep)
        except (OSError, backups.BackupError, sqlite3.Error) as exc:
            log.error("scheduled backup failed: %s", exc)
            for name in functions:
                store.event(name, "backup-failed", f"scheduled backup to {folder} failed: {exc}")
            continue
        message = f"backup {taken.path} ({taken.size} bytes)"
        if gone:
            message += f"; {len(gone)} older removed (keeping {config.backup_keep})"
        log.info("%s", message)
        for name in functions:
            store.event(name, "backup", message)


async def _deploy_folder(plane: ControlPlane, folder: Path, say: Callable[[str], None]) -> None:
    name = folder_name(folder)
    try:
        data = await asyncio.to_thread(pack, folder)
        result = await plane.rollouts.deploy(
            name, data, lambda line: log.info("%s: %s", name, line)
        )
    except (DeployError, ValueError, OSError) as exc:
        say(f"hearth: deploy of {folder} failed: {exc}")
        return
    say(f"hearth: {name} v{result['version']} -> {'  '.join(result['urls'])}")


def _port(server: Any) -> int:
    return int(server.sockets[0].getsockname()[1])


def _with_ports(config: DaemonConfig, port: int, api_port: int) -> DaemonConfig:
    return replace(config, port=port, api_port=api_port)


def _write_state(data_dir: Path, config: DaemonConfig) -> None:
    """Where the running daemon listens, for the CLI and for tests."""
    state = {
        "pid": os.getpid(),
        "gateway": config.gateway_url,
        "api": config.api_url,
        "domain": config.domain,
        "port": config.port,
        "api_port": config.api_port,
    }
    tmp = data_dir / "daemon.json.tmp"
    tmp.write_text(json.dumps(state))
    os.replace(tmp, data_dir / "daemon.json")


def run(config: DaemonConfig, deploy: list[Path]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per invocation attempt
    host = Host.probe()
    if config.sandbox != "off" and host.root and host.disks:
        try:  # before any thread starts
            own_namespace()
        except OSError as exc:
            log.warning("no disk per function: no mount namespace of its own (%s)", exc)
            host = replace(host, disks=False)
    try:
        import uvloop

        uvloop.run(serve(config, deploy, host=host))
    except ImportError:
        asyncio.run(serve(config, deploy, host=host))
