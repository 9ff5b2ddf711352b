"""Deploy, call, inspect, remove: the core loop through the real daemon."""

import io
import json
import tarfile

import httpx

from tests.e2e.conftest import EXAMPLES


def test_hello_by_path_and_by_host(daemon):
    result = daemon.deploy(EXAMPLES / "hello")
    assert result["name"] == "hello"
    assert result["version"] >= 1
    assert f"{daemon.gateway}/fn/hello/" in result["urls"]
    assert daemon.get("/fn/hello/").text == "hello, world\n"
    assert daemon.get("/fn/hello/?name=hearth").text == "hello, hearth\n"
    by_host = daemon.get("/", headers={"host": f"hello.localhost:{daemon.port}"})
    assert by_host.status_code == 200
    assert by_host.text == "hello, world\n"


def test_deploy_prints_url_version_and_time(daemon):
    result = daemon.cli("deploy", str(EXAMPLES / "hello"), check=True)
    assert "hello v" in result.stdout
    assert "serving (" in result.stdout
    assert f"{daemon.gateway}/fn/hello/" in result.stdout


def test_context_persists_across_requests(daemon):
    daemon.deploy(EXAMPLES / "visits")
    answers = [daemon.get("/fn/visits/").json() for _ in range(5)]
    assert [a["visits"] for a in answers] == [1, 2, 3, 4, 5]
    assert len({a["pid"] for a in answers}) == 1


def test_unknown_function_is_404_naming_it(daemon):
    response = daemon.get("/fn/no-such-thing/")
    assert response.status_code == 404
    assert response.json()["function"] == "no-such-thing"


def test_handler_formats_and_setup(daemon, fn_dir):
    folder = fn_dir(
        "formats",
        {
            "main.py": """
                import os
                from starlette.responses import PlainTextResponse

                state = {}

                def setup():
                    state["greeting"] = os.environ["GREETING"]

                async def handle(request):
                    kind = request.query_params.get("kind")
                    if kind == "bytes":
                        return b"raw"
                    if kind == "response":
                        return PlainTextResponse("made", status_code=201)
                    if kind == "none":
                        return None
                    body = (await request.body()).decode()
                    return {"greeting": state["greeting"], "path": request.url.path,
                            "root_path": request.scope["root_path"], "body": body,
                            "client": request.client.host, "method": request.method}
            """,
            "hearth.toml": """
                [env]
                GREETING = "bonjour"
            """,
        },
    )
    daemon.deploy(folder)
    data = daemon.request("POST", "/fn/formats/sub/path", content=b"payload").json()
    assert data == {
        "greeting": "bonjour",
        "path": "/fn/formats/sub/path",
        "root_path": "/fn/formats",
        "body": "payload",
        "client": "127.0.0.1",
        "method": "POST",
    }
    assert daemon.get("/fn/formats/?kind=bytes").content == b"raw"
    made = daemon.get("/fn/formats/?kind=response")
    assert (made.status_code, made.text) == (201, "made")
    assert daemon.get("/fn/formats/?kind=none").status_code == 204


def test_plain_wsgi_and_asgi_apps(daemon, fn_dir):
    wsgi = fn_dir(
        "raw-wsgi",
        {
            "main.py": """
                def application(environ, start_response):
                    body = (environ["SCRIPT_NAME"] + "|" + environ["PATH_INFO"]).encode()
                    start_response("200 OK", [("content-type", "text/plain")])
                    return [body]
            """
        },
    )
    asgi = fn_dir(
        "raw-asgi",
        {
            "app.py": """
                started = []

                async def app(scope, receive, send):
                    if scope["type"] == "lifespan":
                        while True:
                            message = await receive()
                            if message["type"] == "lifespan.startup":
                                started.append(True)
                                await send({"type": "lifespan.startup.complete"})
                            else:
                                await send({"type": "lifespan.shutdown.complete"})
                                return
                    body = f"started={len(started)} scheme={scope['scheme']}".encode()
                    await send({"type": "http.response.start", "status": 200, "headers": []})
                    await send({"type": "http.response.body", "body": body})
            """,
            "hearth.toml": 'entrypoint = "app:app"\n',
        },
    )
    daemon.deploy(wsgi)
    daemon.deploy(asgi)
    assert daemon.get("/fn/raw-wsgi/a/b").text == "/fn/raw-wsgi|/a/b"
    assert daemon.get("/fn/raw-asgi/").text == "started=1 scheme=http"


def test_failing_setup_keeps_previous_version(daemon, fn_dir):
    good = fn_dir("flaky", {"main.py": "def handle(request):\n    return 'v1'\n"})
    first = daemon.deploy(good)
    bad = fn_dir(
        "flaky-bad",
        {
            "main.py": """
                def setup():
                    raise RuntimeError("database unreachable: boom")

                def handle(request):
                    return "v2"
            """
        },
    )
    result = daemon.cli("deploy", str(bad), "--name", "flaky")
    assert result.returncode == 1
    assert "RuntimeError: database unreachable: boom" in result.stderr
    assert f"v{first['version']} keeps serving" in result.stderr
    assert daemon.get("/fn/flaky/").text == "v1"
    status = daemon.status("flaky")
    assert status["version"] == first["version"]
    failed = status["versions"][-1]
    assert failed["status"] == "failed"
    assert "boom" in failed["error"]


def test_import_error_keeps_previous_version(daemon, fn_dir):
    daemon.deploy(fn_dir("imports", {"main.py": "def handle(request):\n    return 'ok'\n"}))
    broken = fn_dir("imports-bad", {"main.py": "import no_such_module_here\n"})
    result = daemon.cli("deploy", str(broken), "--name", "imports")
    assert result.returncode == 1
    assert "No module named 'no_such_module_here'" in result.stderr
    assert daemon.get("/fn/imports/").text == "ok"


def test_first_deploy_failing_leaves_nothing(daemon, fn_dir):
    broken = fn_dir("never", {"main.py": "raise SystemExit(3)\n"})
    assert daemon.cli("deploy", str(broken)).returncode == 1
    assert daemon.get("/fn/never/").status_code == 404
    assert "never" not in [f["name"] for f in json.loads(daemon.cli("ls", "--json").stdout)]


def _tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return raw.getvalue()


def _deploy_raw(daemon, name: str, data: bytes) -> dict:
    with daemon.api_client() as api:
        response = api.post(f"/v1/functions/{name}/versions", content=data)
    if response.status_code != 200:
        return response.json()
    return json.loads(response.text.strip().splitlines()[-1])


def test_unsafe_bundles_are_rejected_and_old_version_serves(daemon, fn_dir):
    daemon.deploy(fn_dir("guarded", {"main.py": "def handle(request):\n    return 'safe'\n"}))
    escape = tarfile.TarInfo("../escape.py")
    escape.size = 1
    absolute = tarfile.TarInfo("/tmp/abs.py")
    absolute.size = 1
    link = tarfile.TarInfo("link")
    link.type = tarfile.SYMTYPE
    link.linkname = "../../etc/passwd"
    cases = {
        "contains '..'": _tar((escape, b"x")),
        "absolute path": _tar((absolute, b"x")),
        "outside the bundle": _tar((link, None)),
        "not a readable tar.gz": b"definitely not a tarball",
    }
    for reason, data in cases.items():
        answer = _deploy_raw(daemon, "guarded", data)
        assert reason in answer["error"], answer
        assert daemon.get("/fn/guarded/").text == "safe"


def test_oversized_bundle_is_413(daemon):
    with daemon.api_client() as api:
        response = api.post("/v1/functions/huge/versions", content=b"0" * (50 * 1000**2 + 1))
    assert response.status_code == 413
    assert "over the limit" in response.json()["error"]


def test_invalid_settings_are_rejected(daemon, fn_dir):
    folder = fn_dir(
        "badconf",
        {
            "main.py": "def handle(r):\n    return 'x'\n",
            "hearth.toml": "[scale]\nmin = 5\nmax = 1\n",
        },
    )
    result = daemon.cli("deploy", str(folder))
    assert result.returncode == 1
    assert "min <= max" in result.stderr


def test_api_requires_token(daemon):
    response = httpx.get(daemon.api + "/v1/functions")
    assert response.status_code == 401
    assert "token" in response.json()["error"]
    with daemon.api_client(token="wrong") as api:
        assert api.get("/v1/functions").status_code == 401
    assert httpx.get(daemon.api + "/v1/health").json()["ok"] is True
    assert oct((daemon.data_dir / "token").stat().st_mode & 0o777) == "0o600"


def test_ls_status_invoke_json(daemon):
    daemon.deploy(EXAMPLES / "hello")
    listing = json.loads(daemon.cli("ls", "--json", check=True).stdout)
    hello = next(f for f in listing if f["name"] == "hello")
    assert hello["instances"][0]["state"] == "ready"
    status = daemon.status("hello")
    instance = status["instances"][0]
    assert {"id", "pid", "state", "in_flight", "age"} <= set(instance)
    assert status["spec"]["scale"]["min"] == 1
    invoked = daemon.cli("invoke", "hello", "--path", "/?name=cli", "--json", check=True)
    invoked = json.loads(invoked.stdout)
    assert invoked["status"] == 200
    assert invoked["body"] == "hello, cli\n"
    plain = daemon.cli("invoke", "hello", check=True)
    assert plain.stdout == "hello, world\n"
    assert "200" in plain.stderr
    missing = daemon.cli("status", "nothing-here")
    assert missing.returncode == 1
    assert "no function named 'nothing-here'" in missing.stderr


def test_rm_drains_and_forgets(daemon, fn_dir):
    folder = fn_dir(
        "doomed",
        {
            "main.py": """
                import os

                def handle(request):
                    return "alive"

                def teardown():
                    with open(os.path.join(os.environ["HEARTH_DATA"], "marker"), "w") as fh:
                        fh.write("teardown ran")
            """,
        },
    )
    daemon.deploy(folder)
    assert daemon.get("/fn/doomed/").text == "alive"
    daemon.cli("rm", "doomed", check=True)
    assert daemon.get("/fn/doomed/").status_code == 404
    assert daemon.cli("status", "doomed").returncode == 1
    assert daemon.read_data("doomed", "marker") == "teardown ran"
