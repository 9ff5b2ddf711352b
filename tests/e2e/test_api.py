"""The control API against its own OpenAPI document.

Clients are generated from GET /openapi.json, so it must be true: schemathesis fuzzes every
operation of a real daemon and checks each answer (status code, content type, headers and
body) against the document. Targeted tests follow for what fuzzing reaches poorly.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from hearth.api import create_app
from hearth.api.app import BY_CAPABILITY
from hearth.api.deploy import deploy_stream
from hearth.control import DeployError
from tests.e2e.conftest import write_function

FUNCTION = "api-probe"
EXAMPLES_PER_OPERATION = 12

# The deploy body is a tar.gz: send what schemathesis draws as raw bytes.
schemathesis.serializer.alias("application/gzip", "application/octet-stream")


@pytest.fixture(scope="module")
def probe(daemon, tmp_path_factory) -> str:
    """One real function, so operations on an existing name are exercised too."""
    folder = write_function(
        tmp_path_factory.mktemp("functions"),
        FUNCTION,
        {
            "main.py": "def handle(request):\n    print('probe called', flush=True)\n    return 'probe'\n"
        },
    )
    assert daemon.deploy(folder)["version"] == 1
    return FUNCTION


# The document comes from the code, so it is known before the daemon runs: that is when
# pytest collects one test per operation. `test_the_daemon_serves_this_document` ties the two.
DOCUMENT = create_app(None, None, None, None, None).openapi()  # type: ignore[arg-type]


def _schema(**parameters: str) -> Any:
    config = schemathesis.Config.from_dict({"request-timeout": 30, "parameters": parameters})
    return schemathesis.openapi.from_dict(DOCUMENT, config=config)


any_name = _schema()
# On the deployed function; deleting it would leave the other operations nothing to find,
# and a drawn `min = 1000` would start a thousand instances (tests/e2e/test_scale.py).
its_name = (
    _schema(**{"path.name": FUNCTION})
    .exclude(method="DELETE")
    .exclude(method="PATCH", path="/v1/functions/{name}/scale")
)


class Tally:
    """Cases sent, by phase and by status code: what the run reached."""

    def __init__(self) -> None:
        self.cases: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()

    def count(self, case, status: int) -> None:
        self.cases[case.meta.phase.name.value if case.meta else "explicit"] += 1
        self.statuses[status] += 1


@pytest.fixture(scope="module")
def tally():
    return Tally()


FUZZ = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _call(case, daemon, tally) -> None:
    # follow=true never ends; the streams are read separately below.
    if case.query and case.query.get("follow") in (True, "true"):
        case.query["follow"] = "false"
    # The real token in place of the drawn one; headers drawn invalid on purpose (say, with
    # no Authorization) go as drawn: they must get 401.
    if not _drawn_invalid(case, "header"):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {daemon.token}"}
    response = case.call_and_validate(base_url=daemon.api)
    tally.count(case, response.status_code)
    assert response.status_code < 500, response.text
    if response.headers.get("content-type", [""])[0].startswith("application/x-ndjson"):
        _check_deploy_lines(response.text)


def _drawn_invalid(case, location: str) -> bool:
    components = case.meta.components if case.meta else {}
    return any(where == location and how.mode.is_negative for where, how in components.items())


def _check_deploy_lines(text: str) -> None:
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines, "the deploy stream ended without a line"
    assert all(len(line) == 1 for line in lines), lines
    assert all("log" in line for line in lines[:-1]), lines
    assert "result" in lines[-1] or "error" in lines[-1], lines


@any_name.parametrize()
@FUZZ
def test_every_operation_answers_as_documented(case, daemon, probe, tally):
    _call(case, daemon, tally)


@its_name.parametrize()
@FUZZ
def test_operations_on_an_existing_function(case, daemon, probe, tally):
    _call(case, daemon, tally)


def test_the_daemon_serves_this_document(daemon):
    with httpx.Client(base_url=daemon.api, timeout=30) as anonymous:
        assert anonymous.get("/openapi.json").json() == DOCUMENT


def test_fuzzing_reached_every_operation(tally, daemon):
    if not tally.cases:
        pytest.skip("counts the cases of the fuzzing tests above; run it with them")
    print(f"schemathesis: {tally.cases.total()} cases {dict(tally.cases)} {dict(tally.statuses)}")
    assert {"coverage", "fuzzing"} <= set(tally.cases), tally.cases
    assert {200, 400, 401, 404, 405, 409, 422} <= set(tally.statuses), tally.statuses
    # The fuzzed deploys left the function as it was.
    with daemon.api_client() as api:
        assert api.get(f"/v1/functions/{FUNCTION}").json()["version"] == 1


# Streams


def test_events_follow_streams_json_lines(daemon, probe):
    with (
        daemon.api_client() as api,
        api.stream(
            "GET", f"/v1/functions/{probe}/events", params={"follow": "true", "limit": 1}
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        event = json.loads(next(response.iter_lines()))
        assert set(event) >= {"id", "time", "kind", "message"}


def test_logs_follow_streams_text(daemon, probe):
    assert daemon.get(f"/fn/{probe}/").text == "probe"
    with (
        daemon.api_client() as api,
        api.stream("GET", f"/v1/functions/{probe}/logs", params={"follow": "true"}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert "probe called" in next(response.iter_lines())


def test_follow_accepts_only_true_or_false(daemon, probe):
    with daemon.api_client() as api:
        response = api.get(f"/v1/functions/{probe}/events", params={"follow": "yes"})
    assert response.status_code == 422
    assert "follow" in response.json()["error"]


# Errors


def test_wrong_method_is_405_with_every_allowed_method(daemon):
    with daemon.api_client() as api:
        response = api.request("PATCH", "/v1/functions/anything")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"DELETE", "GET"}
    assert "PATCH" in response.json()["error"]


def test_bad_traffic_keys_are_422_naming_the_problem(daemon, probe):
    with daemon.api_client() as api:
        response = api.post(f"/v1/functions/{probe}/traffic", json={"weights": {"v1": 100}})
    assert response.status_code == 422
    body = response.json()
    assert set(body) == {"error"}
    assert "weights" in body["error"]
    assert "'v1'" in body["error"]
    assert "version numbers" in body["error"]


def test_traffic_weights_are_bounded(daemon, probe):
    with daemon.api_client() as api:
        for weights in ({}, {"1": -1}, {"1": 100_001}, {"1": 1.5}, {"1": "100"}):
            response = api.post(f"/v1/functions/{probe}/traffic", json={"weights": weights})
            assert response.status_code == 422, weights
            assert "weights" in response.json()["error"]


def test_traffic_accepts_string_version_keys(daemon, probe):
    with daemon.api_client() as api:
        response = api.post(f"/v1/functions/{probe}/traffic", json={"weights": {"1": 100}})
    assert response.status_code == 200, response.text
    assert response.json()["traffic"] == {"1": 100}


def test_a_name_that_cannot_be_a_function_is_404(daemon):
    with daemon.api_client() as api:
        assert api.get("/v1/functions/trailing%0A").status_code == 404
        response = api.get("/v1/functions/Not_A_Name")
    assert response.status_code == 404
    assert response.json()["function"] == "Not_A_Name"
    assert "lowercase" in response.json()["error"]


def test_deploy_refuses_a_bad_name_before_reading_the_bundle(daemon):
    with daemon.api_client() as api:
        for name in ("Not_A_Name", "trailing%0A"):
            response = api.post(
                f"/v1/functions/{name}/versions",
                content=b"x",
                headers={"content-type": "application/gzip"},
            )
            assert response.status_code == 400, name
            assert "invalid function name" in response.json()["error"]


def test_deploy_needs_a_gzip_body(daemon):
    with daemon.api_client() as api:
        wrong = api.post(
            f"/v1/functions/{FUNCTION}/versions",
            content=b"x",
            headers={"content-type": "text/plain"},
        )
        empty = api.post(
            f"/v1/functions/{FUNCTION}/versions", headers={"content-type": "application/gzip"}
        )
    assert wrong.status_code == 415
    assert "application/gzip" in wrong.json()["error"]
    assert empty.status_code == 400


def test_query_parameters_are_bounded(daemon, probe):
    with daemon.api_client() as api:
        for path, params in (
            ("events", {"limit": 0}),
            ("events", {"limit": 10_001}),
            ("logs", {"tail": -1}),
            ("logs", {"tail": 100_001}),
        ):
            response = api.get(f"/v1/functions/{probe}/{path}", params=params)
            assert response.status_code == 422, (path, params)
            assert next(iter(params)) in response.json()["error"]


def test_missing_token_is_401_everywhere_but_health(daemon):
    with httpx.Client(base_url=daemon.api, timeout=30) as anonymous:
        assert anonymous.get("/v1/health").status_code == 200
        assert anonymous.get("/openapi.json").status_code == 200
        response = anonymous.get("/v1/functions")
    assert response.status_code == 401
    assert "token" in response.json()["error"]


def test_the_document_declares_security_and_no_foreign_error_shape(daemon):
    with httpx.Client(base_url=daemon.api, timeout=30) as anonymous:
        document = anonymous.get("/openapi.json").json()
    assert "HTTPValidationError" not in json.dumps(document)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            has_auth = "401" in operation["responses"]
            open_to_all = path == "/v1/health" or (method, path) in BY_CAPABILITY
            assert has_auth == (not open_to_all), (method, path)
            assert ("security" in operation) == (not open_to_all), (method, path)


# The deploy stream, in process: the failures a real daemon does not give on demand.


class _Config:
    max_bundle = 1000


class _Plane:
    """Just enough of the control plane for the deploy route."""

    def __init__(self, deploy: Any) -> None:
        self.config = _Config()
        self.rollouts = SimpleNamespace(deploy=deploy)
        self.reconciler = self
        self.tasks: set[asyncio.Task[Any]] = set()

    def background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


class _Store:
    def token_scope(self, token: str) -> str | None:
        return "admin" if token == "t" else None


def _client(functions: _Plane) -> httpx.AsyncClient:
    app = create_app(functions, _Store(), None, None, None)  # type: ignore[arg-type]
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        base_url="http://api",
        headers={"authorization": "Bearer t", "content-type": "application/gzip"},
    )


async def _lines(functions: _Plane, body: bytes = b"bundle") -> list[dict[str, Any]]:
    async with _client(functions) as client:
        response = await client.post("/v1/functions/fn/versions", content=body)
    assert response.status_code == 200
    return [json.loads(line) for line in response.text.splitlines()]


async def test_an_internal_error_ends_the_deploy_stream(caplog):
    async def deploy(name: str, data: bytes, progress: Any) -> dict[str, Any]:
        progress("received bundle")
        raise RuntimeError("disk on fire")

    with caplog.at_level(logging.ERROR, logger="hearth"):
        lines = await _lines(_Plane(deploy))
    assert lines == [
        {"log": "received bundle"},
        {"error": "internal error: RuntimeError: disk on fire; the previous version keeps serving"},
    ]
    logged = [r for r in caplog.records if r.name == "hearth" and r.exc_info]
    assert logged, "the internal error was not logged with its traceback"
    assert "disk on fire" in str(logged[0].exc_info[1])


async def test_a_refused_deploy_ends_the_stream_with_its_reason():
    async def deploy(name: str, data: bytes, progress: Any) -> dict[str, Any]:
        raise DeployError("hearth.toml: scale.min must be >= 0")

    assert await _lines(_Plane(deploy)) == [{"error": "hearth.toml: scale.min must be >= 0"}]


async def test_a_client_that_leaves_does_not_cancel_the_deploy():
    finished = asyncio.Event()
    release = asyncio.Event()

    async def deploy(name: str, data: bytes, progress: Any) -> dict[str, Any]:
        progress("building")
        await release.wait()
        finished.set()
        return {"name": name}

    functions = _Plane(deploy)
    # What Starlette does when the client goes away: the body iterator is closed.
    stream = deploy_stream(functions, "fn", b"bundle")  # type: ignore[arg-type]
    assert json.loads(await anext(stream)) == {"log": "building"}
    await stream.aclose()
    release.set()
    await asyncio.wait_for(finished.wait(), 10)


async def test_an_oversized_bundle_is_413():
    async def deploy(name: str, data: bytes, progress: Any) -> dict[str, Any]:
        raise AssertionError("not reached")

    async with _client(_Plane(deploy)) as client:
        response = await client.post("/v1/functions/fn/versions", content=b"x" * 1001)
    assert response.status_code == 413
    assert "limit of 1000" in response.json()["error"]


async def test_an_internal_error_elsewhere_is_500_in_the_error_shape():
    def overview(*shown: Any) -> list[dict[str, Any]]:
        raise RuntimeError("store gone")

    functions = _Plane(deploy=None)
    functions.views = SimpleNamespace(overview=overview)  # type: ignore[attr-defined]
    async with _client(functions) as client:
        response = await client.get("/v1/functions")
    assert response.status_code == 500
    assert response.json() == {"error": "internal error: RuntimeError: store gone"}
