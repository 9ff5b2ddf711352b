"""A tenant reaches nothing but its own things: scoped tokens, private functions and their
keys, rate limits and secrets, on the real daemon."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

from tests.e2e.conftest import wait_for
from tests.e2e.test_lifecycle import Load

SECRET = "s3cret-value-7f3a"
NEW_SECRET = "s3cret-value-9c1e"


def cli_as(daemon, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`hearth ARGS` with another token than the data directory's admin token."""
    return subprocess.run(
        [sys.executable, "-m", "hearth.cli.main", *args, "--data-dir", str(daemon.data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HEARTH_TOKEN": token, "COLUMNS": "200"},
    )


def secret_from_stdin(daemon, name: str, key: str, value: str, *extra: str):
    where = ("--data-dir", str(daemon.data_dir))
    return subprocess.run(
        [sys.executable, "-m", "hearth.cli.main", "secrets", "set", name, key, *extra, *where],
        input=value,
        capture_output=True,
        text=True,
        timeout=120,
    )


def make_token(daemon, scope: str) -> dict:
    result = daemon.cli(
        "tokens", "create", "--scope", scope, "--name", "test", "--json", check=True
    )
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def functions(daemon, tmp_path_factory):
    """Three functions, deployed once for the module."""
    base = tmp_path_factory.mktemp("access-functions")

    def folder(name: str, main: str, toml: str = "") -> str:
        path = base / name
        path.mkdir()
        (path / "main.py").write_text(main)
        (path / "hearth.toml").write_text(f'name = "{name}"\n{toml}')
        return str(path)

    echo = (
        "import json, os\n\n"
        "def handle(request):\n"
        "    return {'authorization': request.headers.get('authorization'),\n"
        "            'pid': os.getpid(), 'api_key': os.environ.get('API_KEY')}\n"
    )
    folders = {
        "shop": folder("shop", echo),
        "vault": folder("vault", echo, "[access]\npublic = false\n"),
        "meter": folder("meter", echo, '[limits]\nrate = "5/s"\n'),
    }
    for path in folders.values():
        daemon.cli("deploy", path, "--json", check=True)
    return folders


# scoped tokens


def test_a_deploy_token_works_on_its_own_function_only(daemon, functions):
    token = make_token(daemon, "deploy:shop")["token"]
    assert cli_as(daemon, token, "deploy", functions["shop"], "--json").returncode == 0
    with daemon.api_client(token) as api:
        listed = api.get("/v1/functions").json()
        assert [f["name"] for f in listed] == ["shop"]
        assert api.get("/v1/functions/shop").status_code == 200
        assert api.get("/v1/functions/shop/events").status_code == 200
        refused = api.get("/v1/functions/vault")
        assert refused.status_code == 403
        assert "deploy:shop" in refused.json()["error"]
        assert api.get("/v1/functions/vault/logs").status_code == 403
        assert api.get("/v1/tokens").status_code == 403
        assert api.delete("/v1/functions/shop").status_code == 403
        assert api.get("/v1/info").json()["zygotes"] == []
    other = cli_as(daemon, token, "deploy", functions["vault"])
    assert other.returncode == 1
    assert "deploy:shop" in other.stderr
    assert daemon.status("vault")["version"] == 1  # untouched


def test_a_read_token_reads_everything_and_changes_nothing(daemon, functions):
    token = make_token(daemon, "read")["token"]
    with daemon.api_client(token) as api:
        assert {f["name"] for f in api.get("/v1/functions").json()} >= {"shop", "vault"}
        assert api.get("/v1/functions/vault/versions").status_code == 200
        refused = api.post("/v1/functions/shop/rollback", json={})
        assert refused.status_code == 403
        assert "'read'" in refused.json()["error"]
        assert api.post("/v1/functions/shop/keys").status_code == 403
        assert api.get("/v1/tokens").status_code == 403
    assert cli_as(daemon, token, "ls", "--json").returncode == 0


def test_a_revoked_token_is_401(daemon, functions):
    made = make_token(daemon, "read")
    listed = json.loads(daemon.cli("tokens", "ls", "--json", check=True).stdout)
    assert made["id"] in {t["id"] for t in listed}
    assert all("token" not in t for t in listed)
    daemon.cli("tokens", "revoke", made["id"], check=True)
    with daemon.api_client(made["token"]) as api:
        assert api.get("/v1/functions").status_code == 401
    with daemon.api_client() as api:
        assert api.delete("/v1/tokens/file").status_code == 400  # the token file's


def test_a_bad_scope_is_refused_with_the_rule(daemon):
    result = daemon.cli("tokens", "create", "--scope", "deploy:Bad_Name")
    assert result.returncode == 1
    assert "deploy:NAME" in result.stderr


# private functions and keys


def test_a_private_function_needs_a_key_and_never_sees_it(daemon, functions):
    anonymous = daemon.get("/fn/vault/")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert "private" in anonymous.json()["error"]
    assert daemon.get("/fn/vault/", headers={"authorization": "Bearer guess"}).status_code == 401

    made = json.loads(daemon.cli("keys", "create", "vault", "--json", check=True).stdout)
    key = made["key"]
    answer = daemon.get("/fn/vault/", headers={"authorization": f"Bearer {key}"})
    assert answer.status_code == 200
    assert answer.json()["authorization"] is None  # the key stopped at the gateway
    by_host = httpx.get(
        f"http://127.0.0.1:{daemon.port}/",
        headers={"host": f"vault.localhost:{daemon.port}", "authorization": f"Bearer {key}"},
    )
    assert by_host.status_code == 200
    with daemon.api_client() as api:
        listed = api.get("/v1/functions/vault/keys").json()
    assert [k["id"] for k in listed] == [made["id"]]
    assert key not in json.dumps(listed)

    daemon.cli("keys", "revoke", "vault", made["id"], check=True)
    assert daemon.get("/fn/vault/", headers={"authorization": f"Bearer {key}"}).status_code == 401


def test_a_public_function_gets_the_callers_authorization(daemon, functions):
    answer = daemon.get("/fn/shop/", headers={"authorization": "Bearer app-own"})
    assert answer.json()["authorization"] == "Bearer app-own"


# rate limits


def test_over_its_rate_a_function_answers_429_with_retry_after(daemon, functions):
    with httpx.Client(base_url=daemon.gateway, timeout=30) as client:
        answers = [client.get("/fn/meter/") for _ in range(30)]
    statuses = [a.status_code for a in answers]
    assert statuses.count(200) >= 5  # the burst: one second's worth
    assert statuses.count(429) >= 10
    refused = next(a for a in answers if a.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert "over its rate of 5/s" in refused.json()["error"]


# secrets


def _everything_shown(daemon, name: str) -> str:
    """Every answer about the function: CLI, API, events and logs."""
    parts = [
        daemon.cli("status", name, check=True).stdout,
        daemon.cli("status", name, "--json", check=True).stdout,
        daemon.cli("events", name, "--json", check=True).stdout,
        daemon.cli("logs", name, check=True).stdout,
        daemon.cli("secrets", "ls", name, "--json", check=True).stdout,
        daemon.cli("versions", name, "--json", check=True).stdout,
        daemon.cli("ls", "--json", check=True).stdout,
    ]
    with daemon.api_client() as api:
        for path in ("/v1/functions", f"/v1/functions/{name}", f"/v1/functions/{name}/events"):
            parts.append(api.get(path).text)
    return "\n".join(parts) + daemon.log()


def test_a_secret_reaches_the_environment_and_nothing_else(daemon, functions):
    result = secret_from_stdin(daemon, "shop", "API_KEY", SECRET + "\n", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["rolled"] is True
    assert SECRET not in result.stdout
    assert daemon.get("/fn/shop/").json()["api_key"] == SECRET
    listed = json.loads(daemon.cli("secrets", "ls", "shop", "--json", check=True).stdout)
    assert [s["name"] for s in listed] == ["API_KEY"]
    shown = _everything_shown(daemon, "shop")
    assert SECRET not in shown
    assert "secrets changed: rolled instances" in shown
    assert SECRET.encode() not in (daemon.data_dir / "hearth.db").read_bytes()


def test_a_changed_secret_rolls_the_instances_without_losing_a_request(daemon, functions):
    (secret_file := daemon.data_dir.parent / "secret.txt").write_text(SECRET)
    daemon.cli("secrets", "set", "shop", "API_KEY", "--file", str(secret_file), check=True)
    before = {i["pid"] for i in daemon.status("shop")["instances"] if i["state"] == "ready"}
    with Load(daemon.gateway + "/fn/shop/", threads=3) as load:
        wait_for(lambda: load.sent > 30, what="load running")
        secret_file.write_text(NEW_SECRET)
        daemon.cli("secrets", "set", "shop", "API_KEY", "--file", str(secret_file), check=True)
        wait_for(lambda: any(NEW_SECRET in body for body in load.bodies), what="the new value")
        seen = load.sent
        wait_for(lambda: load.sent > seen + 30, what="load after the roll")
    print(f"sent {load.sent} during the roll, failed {len(load.failures)}")
    assert load.failures == [], load.failures[:5]
    fresh = daemon.get("/fn/shop/").json()
    assert fresh["api_key"] == NEW_SECRET
    assert fresh["pid"] not in before
    daemon.cli("secrets", "rm", "shop", "API_KEY", check=True)
    assert daemon.get("/fn/shop/").json()["api_key"] is None


def test_secret_names_follow_the_env_rules(daemon, functions):
    with daemon.api_client() as api:
        reserved = api.put("/v1/functions/shop/secrets/HEARTH_X", json={"value": "v"})
        assert reserved.status_code == 400
        assert "reserved" in reserved.json()["error"]
        nul = api.put("/v1/functions/shop/secrets/A", json={"value": "hidden\u0000value"})
        assert nul.status_code == 422
        assert "NUL" in nul.text and "hidden" not in nul.text  # a refused value is not echoed
        missing = api.delete("/v1/functions/shop/secrets/NOPE")
        assert missing.status_code == 404


# last: it restarts the module's daemon


def test_keys_secrets_and_access_survive_a_restart(daemon, functions):
    key = json.loads(daemon.cli("keys", "create", "vault", "--json", check=True).stdout)["key"]
    secret = secret_from_stdin(daemon, "vault", "API_KEY", SECRET)
    assert secret.returncode == 0, secret.stderr
    assert daemon.stop() == 0
    daemon.start()
    assert daemon.get("/fn/vault/").status_code == 401
    invoked = daemon.cli("invoke", "vault", "--key", key, "--json", check=True)
    answer = json.loads(json.loads(invoked.stdout)["body"])
    assert answer == {"authorization": None, "pid": answer["pid"], "api_key": SECRET}
    statuses = [daemon.get("/fn/meter/").status_code for _ in range(20)]
    assert 429 in statuses
