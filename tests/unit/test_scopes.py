"""`allowed(scope, method, path)`: every operation of the API, for every kind of scope."""

import pytest

from hearth.api import create_app
from hearth.api.app import OPEN_PATHS
from hearth.api.scopes import Scope, allowed, by_capability, owns

# Every operation the API has, with who may use it. "own": a deploy:NAME token on NAME;
# "other": any token on another function. A new operation fails
# `test_the_table_covers_every_operation` until its line is written here.
ADMIN, READ, OWN = "admin", "read", "own"
TABLE = {
    ("GET", "/v1/info"): {ADMIN, READ, OWN},
    ("GET", "/v1/functions"): {ADMIN, READ, OWN},
    ("GET", "/v1/functions/{name}"): {ADMIN, READ, OWN},
    ("DELETE", "/v1/functions/{name}"): {ADMIN},
    ("GET", "/v1/functions/{name}/versions"): {ADMIN, READ, OWN},
    ("POST", "/v1/functions/{name}/versions"): {ADMIN, OWN},
    ("POST", "/v1/functions/{name}/traffic"): {ADMIN, OWN},
    ("PATCH", "/v1/functions/{name}/scale"): {ADMIN, OWN},
    ("POST", "/v1/functions/{name}/rollback"): {ADMIN, OWN},
    ("GET", "/v1/functions/{name}/events"): {ADMIN, READ, OWN},
    ("GET", "/v1/functions/{name}/logs"): {ADMIN, READ, OWN},
    ("GET", "/v1/functions/{name}/metrics"): {ADMIN, READ, OWN},
    ("GET", "/v1/functions/{name}/data"): {ADMIN, READ, OWN},
    ("PUT", "/v1/functions/{name}/data"): {ADMIN, OWN},
    ("GET", "/v1/functions/{name}/keys"): {ADMIN, READ, OWN},
    ("POST", "/v1/functions/{name}/keys"): {ADMIN, OWN},
    ("DELETE", "/v1/functions/{name}/keys/{id}"): {ADMIN, OWN},
    ("GET", "/v1/functions/{name}/secrets"): {ADMIN, READ, OWN},
    ("PUT", "/v1/functions/{name}/secrets/{key}"): {ADMIN, OWN},
    ("DELETE", "/v1/functions/{name}/secrets/{key}"): {ADMIN, OWN},
    ("GET", "/v1/functions/{name}/schedules"): {ADMIN, READ, OWN},
    ("GET", "/v1/schedules"): {ADMIN, READ, OWN},  # a deploy token sees its function's
    ("GET", "/v1/metrics"): {ADMIN, READ, OWN},
    ("GET", "/metrics"): {ADMIN, READ},  # every function's numbers
    ("GET", "/v1/backup"): {ADMIN},
    ("GET", "/v1/tokens"): {ADMIN},
    ("POST", "/v1/tokens"): {ADMIN},
    ("DELETE", "/v1/tokens/{id}"): {ADMIN},
    ("GET", "/v1/functions/{name}/invocations"): {ADMIN, READ, OWN},
    # Also with no token at all: the id is the credential (below).
    ("GET", "/v1/invocations/{invocation}"): {ADMIN, READ, OWN},
    # OWN: let through here; `owns` then decides on the invocation's function (below).
    ("POST", "/v1/invocations/{invocation}/retry"): {ADMIN, OWN},
}
# Reached without any token.
BY_CAPABILITY = {("GET", "/v1/invocations/{invocation}")}
INVOCATION = "Yx3_kQ-9aZ0bC1dE2fG3hI"  # 22 url-safe characters: 128 bits
SCOPES = {ADMIN: Scope("admin"), READ: Scope("read"), OWN: Scope("deploy", "mine")}
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _operations():
    document = create_app(None, None, None, None, None).openapi()  # type: ignore[arg-type]
    return {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
        if path not in OPEN_PATHS
    }


def _concrete(template, name):
    return (
        template.replace("{name}", name)
        .replace("{id}", "ab12cd34")
        .replace("{key}", "API_KEY")
        .replace("{invocation}", INVOCATION)
    )


def test_the_table_covers_every_operation():
    assert set(TABLE) == _operations()


@pytest.mark.parametrize(("method", "template"), sorted(TABLE))
@pytest.mark.parametrize("who", sorted(SCOPES))
def test_each_operation_on_its_own_function(method, template, who):
    path = _concrete(template, "mine")
    assert allowed(SCOPES[who], method, path) == (who in TABLE[method, template])


@pytest.mark.parametrize(("method", "template"), sorted(t for t in TABLE if "{name}" in t[1]))
@pytest.mark.parametrize("who", sorted(SCOPES))
def test_a_deploy_token_reaches_no_other_function(method, template, who):
    path = _concrete(template, "other")
    expected = who in TABLE[method, template] and who != OWN
    assert allowed(SCOPES[who], method, path) == expected


@pytest.mark.parametrize("method", METHODS)
def test_read_is_get_only_and_never_tokens(method):
    read = Scope("read")
    for path in ("/v1/functions", "/v1/functions/x", "/v1/functions/x/anything", "/v1/info"):
        assert allowed(read, method, path) == (method in ("GET", "HEAD"))
    for path in ("/v1/tokens", "/v1/tokens/ab12cd34"):
        assert not allowed(read, method, path)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/functions/mine-2/keys",  # a name that starts with the token's
        "/v1/functions/min/keys",
        "/v1/functions/mine/",
        "/v1/functions/mine//keys",
        "/v1/functions/mine/./keys",
        "/v1/functions/mine/../other/keys",
        "/v1/functions/mine/keys/../../other",
        "/v1/functions/mine/unknown",  # not listed: closed until it is
        "/v1/functionsx",
        "/v1/tokens",
        "/v1/tokens/",
        "/v1/",
        "/",
    ],
)
def test_a_deploy_token_is_refused_around_its_function(path):
    own = Scope("deploy", "mine")
    for method in METHODS:
        assert not allowed(own, method, path), (method, path)


def test_admin_may_do_anything():
    for method in METHODS:
        for path in ("/v1/tokens", "/v1/functions/x", "/anything/../at/all"):
            assert allowed(Scope("admin"), method, path)


@pytest.mark.parametrize(
    ("text", "scope"),
    [
        ("admin", Scope("admin")),
        ("read", Scope("read")),
        ("deploy:mine", Scope("deploy", "mine")),
        ("deploy:a-1", Scope("deploy", "a-1")),
    ],
)
def test_scopes_read_and_print_back(text, scope):
    assert Scope.parse(text) == scope
    assert str(scope) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Admin",
        "write",
        "deploy",
        "deploy:",
        "deploy:Bad_Name",
        "deploy:x:y",
        "read:x",
        "deploy:x\n",
    ],
)
def test_unknown_scopes_are_refused_with_the_rule(text):
    with pytest.raises(ValueError, match="a scope is 'admin', 'read' or 'deploy:NAME'"):
        Scope.parse(text)


def test_lists_show_a_deploy_token_its_function_only():
    assert Scope("deploy", "mine").sees("mine")
    assert not Scope("deploy", "mine").sees("other")
    assert Scope("read").sees("other") and Scope("admin").sees("other")


@pytest.mark.parametrize(("method", "template"), sorted(TABLE))
def test_only_reading_one_invocation_goes_without_a_token(method, template):
    path = _concrete(template, "mine")
    assert by_capability(method, path) == ((method, template) in BY_CAPABILITY)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/invocations/",
        "/v1/invocations",
        f"/v1/invocations/{INVOCATION}/",
        f"/v1/invocations/{INVOCATION}/retry",
        f"/v1/invocations/{INVOCATION}x",
        f"/v1/invocations/{INVOCATION[:-1]}",
        f"/v1/invocations/{INVOCATION[:-1]}.",
        "/v1/invocations/../tokens",
        f"/v1/invocations/{INVOCATION}/../../tokens",
        f"/v1/functions/mine/invocations/{INVOCATION}",
    ],
)
def test_no_other_path_is_read_by_capability(path):
    for method in METHODS:
        assert not by_capability(method, path), (method, path)


def test_the_capability_is_for_reading_only():
    path = f"/v1/invocations/{INVOCATION}"
    assert by_capability("GET", path) and by_capability("HEAD", path)
    for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        assert not by_capability(method, path)


def test_a_deploy_token_retries_only_its_own_functions_invocations():
    assert owns(Scope("deploy", "mine"), "mine")
    assert not owns(Scope("deploy", "mine"), "other")
    assert not owns(Scope("read"), "mine")
    assert owns(Scope("admin"), "anything")


@pytest.mark.parametrize(
    "path",
    [
        f"/v1/invocations/{INVOCATION}/cancel",  # not listed: closed until it is
        f"/v1/invocations/{INVOCATION}/retry/",
        "/v1/invocations/short/retry",
    ],
)
def test_a_deploy_token_reaches_nothing_else_under_invocations(path):
    for method in METHODS:
        assert not allowed(Scope("deploy", "mine"), method, path), (method, path)
