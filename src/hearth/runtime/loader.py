"""Find a function's entrypoint and turn it into one ASGI callable.

The interface is read from the callable's shape, so user code never declares it:
three parameters and async -> ASGI 3; two -> WSGI; one -> `handle(request)`.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from a2wsgi import WSGIMiddleware
from starlette.types import ASGIApp

from hearth.runtime.handler import HandlerApp

CANDIDATES = ("app", "application", "handle")


class LoadError(Exception):
    """The entrypoint cannot be found or is not a supported kind of callable."""


def load(entrypoint: str | None, concurrency: int) -> tuple[ASGIApp, str]:
    """Import the entrypoint; return the ASGI app and its interface name."""
    module_name, attr = _split(entrypoint)
    module = importlib.import_module(module_name)
    if attr is None:
        attr = next((name for name in CANDIDATES if hasattr(module, name)), None)
        if attr is None:
            raise LoadError(
                f"{module_name}.py defines none of {', '.join(CANDIDATES)}; "
                "define one or set entrypoint in hearth.toml"
            )
    target = getattr(module, attr, None)
    if target is None:
        raise LoadError(f"module {module_name!r} has no attribute {attr!r}")
    kind = interface(target)
    if kind == "asgi":
        return target, kind
    if kind == "wsgi":
        wsgi: ASGIApp = WSGIMiddleware(  # type: ignore[assignment]
            terminated(target), workers=concurrency
        )
        return wsgi, kind
    return (
        HandlerApp(target, getattr(module, "setup", None), getattr(module, "teardown", None)),
        kind,
    )


def terminated(app: Any) -> Any:
    """The WSGI app, told that its input ends where the body ends (`wsgi.input_terminated`,
    as gunicorn says): a chunked body has no Content-Length, and without this Werkzeug
    (Flask) reads it as empty. a2wsgi's input does end there."""

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        environ["wsgi.input_terminated"] = True
        return app(environ, start_response)

    return wsgi


def interface(target: Any) -> str:
    if not callable(target):
        raise LoadError(f"entrypoint {target!r} is not callable")
    call = target if inspect.isfunction(target) or inspect.ismethod(target) else target.__call__
    try:
        params = [
            p
            for p in inspect.signature(call).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError) as exc:
        raise LoadError(f"cannot inspect entrypoint {target!r}: {exc}") from exc
    if len(params) == 3 and inspect.iscoroutinefunction(call):
        return "asgi"
    if len(params) == 2:
        return "wsgi"
    if len(params) == 1:
        return "handler"
    raise LoadError(
        f"entrypoint {target!r} takes {len(params)} arguments; expected an ASGI app "
        "(scope, receive, send), a WSGI app (environ, start_response) or handle(request)"
    )


def _split(entrypoint: str | None) -> tuple[str, str | None]:
    if not entrypoint:
        return "main", None
    module, _, attr = entrypoint.partition(":")
    return module, attr or None
