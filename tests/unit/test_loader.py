import json

import pytest
from starlette.responses import PlainTextResponse

from hearth.runtime.handler import to_response
from hearth.runtime.loader import LoadError, interface


async def asgi_app(scope, receive, send):
    pass


class AsgiClass:
    async def __call__(self, scope, receive, send):
        pass


def wsgi_app(environ, start_response):
    return []


def handle(request):
    return "hi"


async def async_handle(request):
    return "hi"


@pytest.mark.parametrize(
    ("target", "kind"),
    [
        (asgi_app, "asgi"),
        (AsgiClass(), "asgi"),
        (wsgi_app, "wsgi"),
        (handle, "handler"),
        (async_handle, "handler"),
    ],
)
def test_interface_from_shape(target, kind):
    assert interface(target) == kind


def test_interface_rejects_other_shapes():
    with pytest.raises(LoadError, match="takes 0 arguments"):
        interface(lambda: None)
    with pytest.raises(LoadError, match="not callable"):
        interface(42)


def test_flask_is_wsgi():
    flask = pytest.importorskip("flask")
    assert interface(flask.Flask("x")) == "wsgi"


def test_to_response_kinds():
    assert to_response("hi").body == b"hi"
    assert to_response("hi").media_type == "text/plain"
    assert to_response(b"\x00").media_type == "application/octet-stream"
    assert json.loads(to_response({"a": 1}).body) == {"a": 1}
    assert json.loads(to_response([1, 2]).body) == [1, 2]
    assert to_response(None).status_code == 204
    custom = PlainTextResponse("x", status_code=201)
    assert to_response(custom) is custom
    with pytest.raises(TypeError, match="returned int"):
        to_response(5)
