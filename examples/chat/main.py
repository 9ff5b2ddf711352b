"""A chat room over WebSockets: every message a client sends goes to every client in the
room. Plain Starlette; the room lives in the instance, which Hearth keeps warm (connect
at ws://chat.localhost:8080/ws, or ws://127.0.0.1:8080/fn/chat/ws). Runs unchanged under
`uvicorn main:app`.

One room per instance: with `max = 1` every client meets every other. A room shared by
several instances would go through a shared store (Redis pub/sub with `[kv]`).
"""

from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

room: set[WebSocket] = set()

PAGE = """<!doctype html><title>chat</title>
<pre id=log></pre><input id=say autofocus placeholder="say something, then Enter">
<script>
const url = new URL("ws", location.href); url.protocol = url.protocol.replace("http", "ws");
const ws = new WebSocket(url), log = document.getElementById("log");
ws.onmessage = (e) => { log.textContent += e.data + "\\n"; };
document.getElementById("say").onkeydown = (e) => {
  if (e.key === "Enter") { ws.send(e.target.value); e.target.value = ""; }
};
</script>"""


async def page(request):
    return HTMLResponse(PAGE)


async def chat(websocket: WebSocket) -> None:
    await websocket.accept()
    room.add(websocket)
    try:
        while True:
            text = await websocket.receive_text()
            if text == "/who":
                await websocket.send_text(f"{len(room)} here")
                continue
            for other in list(room):
                await other.send_text(text)
    except WebSocketDisconnect:
        pass
    finally:
        room.discard(websocket)


app = Starlette(routes=[Route("/", page), WebSocketRoute("/ws", chat)])
