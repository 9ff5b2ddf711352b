"""Apply the gateway's forwarding headers to the ASGI scope.

Only the gateway can reach an instance's socket, so these headers are trusted:
X-Forwarded-For -> client, X-Forwarded-Proto -> scheme, X-Forwarded-Prefix -> root_path.
The path is forwarded unchanged (it already includes the prefix), as uvicorn does with
--root-path, so routers see the prefix stripped through root_path.
"""

from starlette.types import ASGIApp, Receive, Scope, Send


class ForwardedMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            for name, value in scope["headers"]:
                if name == b"x-forwarded-prefix":
                    scope["root_path"] = value.decode("latin-1")
                elif name == b"x-forwarded-for":
                    scope["client"] = (value.decode("latin-1").split(",")[0].strip(), 0)
                elif name == b"x-forwarded-proto":
                    scope["scheme"] = value.decode("latin-1").strip()
        await self.app(scope, receive, send)
