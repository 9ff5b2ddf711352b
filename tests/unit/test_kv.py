"""The KV settings and the server's configuration (pure), and where a backup's KV members
are restored to."""

from __future__ import annotations

from pathlib import Path

import pytest

from hearth.kv.keeper import find_server
from hearth.kv.server import Settings, config_text
from hearth.spec import FunctionSpec, SpecError, parse_spec
from hearth.store.backup import BackupError, _destination


def test_kv_is_off_unless_asked_for():
    assert parse_spec(None, "fn").kv.enabled is False
    spec = parse_spec('[kv]\nenabled = true\nmemory = "128MB"\n', "fn")
    assert spec.kv.enabled and spec.kv.memory == 128 * 1000**2
    assert FunctionSpec.from_dict(spec.to_dict()).kv == spec.kv  # stored and read back


@pytest.mark.parametrize(
    "text, said",
    [
        ('[kv]\nenabled = "yes"\n', "[kv] enabled"),
        ('[kv]\nenabled = true\nmemory = "100GiB"\n', "from 1MiB to 64GiB"),
        ("[kv]\nmemory = 12\n", "[kv] memory"),
        ("[kv]\nsize = 1\n", "unknown key size"),
    ],
)
def test_bad_kv_settings_are_refused_with_the_reason(text, said):
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "fn")
    assert said in str(caught.value)


def test_the_server_listens_only_on_its_socket_and_the_function_is_no_admin():
    settings = Settings("/usr/bin/redis-server", Path("/run/fn/kv.sock"), Path("/d/kv"), 1 << 20)
    lines = config_text(settings, "secret").splitlines()
    assert "port 0" in lines and "unixsocket /run/fn/kv.sock" in lines
    assert "unixsocketperm 700" in lines and "appendonly yes" in lines
    assert f"maxmemory {1 << 20}" in lines and "maxmemory-policy noeviction" in lines
    assert "user default on nopass ~* &* +@all -@admin" in lines
    assert "user hearth on >secret ~* &* +@all" in lines


def test_hearth_redis_server_names_the_program(tmp_path):
    assert find_server({"HEARTH_REDIS_SERVER": str(tmp_path / "missing")}) is None
    program = tmp_path / "redis-server"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    assert find_server({"HEARTH_REDIS_SERVER": str(program)}) == str(program)


def test_backup_members_of_a_store_go_to_its_kv_folder_only():
    assert _destination("kv/fn/snapshot.rdb") == Path(
        "functions/fn/kv/appendonlydir/appendonly.aof.1.base.rdb"
    )
    assert _destination("kv/fn/appendonlydir/appendonly.aof.manifest") == Path(
        "functions/fn/kv/appendonlydir/appendonly.aof.manifest"
    )
    for bad in ("kv/fn/redis.conf", "kv/fn/appendonlydir/a/b", "kv/../x/snapshot.rdb"):
        with pytest.raises(BackupError):
            _destination(bad)
