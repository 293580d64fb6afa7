"""The daemon's one listening port: the instruction stream, the page, `/status` and `/live`.

A thin asyncio shell on the daemon's network runtime (skyscreen_hw.net: one asyncio thread for every
socket) around pure parts: the instruction decoder (skyscreen_hw.sources.instructions), the routing and
responses (skyscreen_hw.net.http) and the live view's encoders (skyscreen_hw.net.web). The instruction
stream touches only the Canvas: each binary message is decoded whole and applied in one step (messages
already received are taken together, and a run of colour-pixel-only ones is checked and painted at once:
the same as one by one, cheaper); bad input closes that connection (1003 text, 1007 malformed) with one
log line, and everyone else carries on.
Sizes are bounded: message bytes, connection count, viewers, idle time, handshake time.

Before anything else each request passes, in order: without a token, a Host that is not loopback (DNS
rebinding) gets 403; a browser page from a foreign Origin 403; a missing token 401; an unknown path 404;
one client too many 503. Then `GET /` is the page, `GET /status` the daemon's report, and websocket
handshakes on `/` and `/live` open the instruction stream and the live view.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import socket
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.typing import Data

from skyscreen_hw.config import WebsocketConfig
from skyscreen_hw.errors import SkyscreenError
from skyscreen_hw.net import http as routes
from skyscreen_hw.net.http import HttpError, Route, token_from
from skyscreen_hw.net.runtime import NetworkError, NetworkRuntime, describe_address, is_local_address
from skyscreen_hw.net.web import LIVE_EXTENSIONS, MAX_VIEWERS, LiveStreams
from skyscreen_hw.origins import check_origins, origin_allowed
from skyscreen_hw.outputs.live import LiveView
from skyscreen_hw.sources.canvas import Canvas
from skyscreen_hw.sources.instructions import InstructionError, SessionState, decode, pixel_runs

__all__ = ["InstructionServer", "token_from"]

CLOSE_NORMAL, CLOSE_UNSUPPORTED, CLOSE_INVALID = 1000, 1003, 1007
START_TIMEOUT = 10.0
STOP_TIMEOUT = 2.0
MAX_BATCH = 64  # messages already received, taken together (a 64 KiB read holds up to 63 of 256 words)


# -- the asyncio shell -----------------------------------------------------------------------------------


class InstructionServer:
    """Serves `[websocket]` on the network runtime; `start()` returns once it listens (or raises).

    `runtime` None: the server makes and owns a runtime of its own (started by `start()`, stopped by
    `stop()`). `sock`: a listening socket (or its fd) from socket activation instead of host and port.
    `report`: what `GET /status` answers (404 without it); `live`: the output `/live` streams (404 without).
    """

    def __init__(
        self,
        config: WebsocketConfig,
        canvas: Canvas,
        log: logging.Logger,
        runtime: NetworkRuntime | None = None,
        sock: int | socket.socket | None = None,
        *,
        report: Callable[[], dict[str, Any]] | None = None,
        live: LiveView | None = None,
    ) -> None:
        self.config = config
        self.canvas = canvas
        self.log = log
        self._origins = check_origins(config.origins)
        self._own_runtime = runtime is None
        self.runtime = runtime if runtime is not None else NetworkRuntime(log)
        try:
            self._sock = socket.socket(fileno=sock) if isinstance(sock, int) else sock
        except OSError as exc:
            raise SkyscreenError(f"socket activation: fd {sock} is not a usable socket ({exc})") from None
        self.report = report
        self.live = live
        self._streams = LiveStreams(live, log) if live is not None else None
        self._sessions = itertools.count(1)
        self._admitted: set[ServerConnection] = set()
        self._viewers: set[ServerConnection] = set()  # admitted /live connections
        self._open: set[ServerConnection] = set()
        self._closing: set[asyncio.Task[None]] = set()  # idle closes under way
        self._server: Server | None = None
        self.port = 0
        self.messages = 0
        self.rejected = 0

    @property
    def clients(self) -> int:
        """Instruction stream connections open now."""
        return len(self._open)

    @property
    def viewers(self) -> int:
        """`/live` connections streaming now."""
        return self._streams.viewers if self._streams is not None else 0

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Listen (on host and port, or on the activated socket); SkyscreenError if that cannot be."""
        if self._own_runtime:
            self.runtime.start()
        try:
            self.runtime.call(self._serve(), timeout=START_TIMEOUT)
        except SkyscreenError:
            self._stop_own_runtime()
            raise
        except Exception as exc:
            self._stop_own_runtime()
            where = self._where()
            raise SkyscreenError(
                f"[websocket] cannot listen on {where}: {exc}"
                " (is another skyscreen-hw running? choose another [websocket] port, or enabled = false)"
            ) from exc
        self.runtime.register("websocket", self._close)

    def stop(self) -> None:
        """Close every connection (1001 going away) and the listening socket; waits a bounded time."""
        if self._own_runtime:
            self.runtime.stop()  # runs self._close among the registered services
            return
        self.runtime.unregister(self._close)
        if self._server is not None and self.runtime.running:
            try:
                self.runtime.call(self._close(), timeout=STOP_TIMEOUT)
            except NetworkError as exc:
                self.log.warning("websocket: stopping: %s", exc)

    def _stop_own_runtime(self) -> None:
        if self._own_runtime:
            self.runtime.stop()

    def _where(self) -> str:
        if self._sock is not None:
            try:
                return describe_address(self._sock.family, self._sock.getsockname())
            except OSError:
                return f"fd {self._sock.fileno()}"
        return f"{self.config.host}:{self.config.port}"

    async def _serve(self) -> None:
        cfg = self.config
        where = {"sock": self._sock} if self._sock is not None else {"host": cfg.host, "port": cfg.port}
        server = await serve(
            self._session,
            process_request=self._admit,
            compression=None,  # 32-bit words barely compress, and deflate costs ~7 us a message
            max_size=cfg.max_message_bytes,
            max_queue=16,
            open_timeout=min(START_TIMEOUT, cfg.idle_timeout),
            close_timeout=1.0,
            server_header=None,
            start_serving=False,  # bound, not yet accepting: the address is checked first
            **where,
        )
        try:
            self._check_exposure(server.sockets)
            if self._streams is not None:
                self._streams.attach(asyncio.get_running_loop())
            await server.start_serving()
        except BaseException:
            server.close(close_connections=True)
            await server.wait_closed()
            raise
        self._server = server
        self.port = _bound_port(server)

    def _check_exposure(self, sockets: Iterable[socket.socket]) -> None:
        """No token: every listening socket must be reachable from this machine only (socket activation too)."""
        if self.config.token:
            return
        for sock in sockets:
            name = sock.getsockname()
            if not is_local_address(sock.family, name):
                raise SkyscreenError(
                    f"[websocket] token: required: the websocket listens on {describe_address(sock.family, name)},"
                    " which is not a loopback address; set [websocket] token, or listen on 127.0.0.1"
                    " ([websocket] host, or ListenStream= in skyscreen.socket)"
                )

    async def _close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close(close_connections=True)
            await server.wait_closed()

    # -- per connection -----------------------------------------------------------------------------

    def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        """Before the handshake: Host, Origin, token and route; answers plain HTTP requests itself."""
        refusal = self._refusal(connection, request)
        if refusal is not None:
            self.rejected += 1
            return refusal
        try:
            where, _ = routes.route(request)
        except HttpError as exc:
            return routes.text_response(exc.status, str(exc))
        if where is Route.PAGE:
            host = request.headers.get_all("Host")
            return routes.page_response(host[0] if len(host) == 1 else None)
        if where is Route.STATUS:
            return self._status()
        return self._admit_websocket(connection, where)

    def _refusal(self, connection: ServerConnection, request: Request) -> Response | None:
        """403 for a foreign Host (without a token) or Origin, 401 without the token; None when all is well."""
        hosts = request.headers.get_all("Host")
        token = self.config.token
        local = (socket.gethostname().lower(),)
        if not token and (len(hosts) > 1 or not routes.host_allowed(hosts[0] if hosts else None, self._origins, local)):
            shown = ", ".join(hosts)[:120]
            self.log.warning(
                "websocket %s: refused a request for host %s (HTTP 403): without a [websocket] token only"
                " loopback names are served",
                _peer(connection),
                shown,
            )
            return routes.text_response(
                HTTPStatus.FORBIDDEN,
                f"host {shown} is not served: open http://127.0.0.1:{self.port}/ (or set a [websocket] token)",
            )
        origins = request.headers.get_all("Origin")
        if origins and (
            len(origins) > 1 or not origin_allowed(origins[0], hosts[0] if len(hosts) == 1 else None, self._origins)
        ):
            shown = ", ".join(origins)[:120]
            self.log.warning(
                "websocket %s: refused a page from origin %s (HTTP 403; allow it in [websocket] origins)",
                _peer(connection),
                shown,
            )
            return connection.respond(
                HTTPStatus.FORBIDDEN, f"origin {shown} is not allowed: add it to [websocket] origins\n"
            )
        if token and not hmac.compare_digest(token_from(request).encode(), token.encode()):
            return connection.respond(HTTPStatus.UNAUTHORIZED, "a valid token is required: ?token=... or Bearer\n")
        return None

    def _admit_websocket(self, connection: ServerConnection, where: Route) -> Response | None:
        self._admitted = {c for c in self._admitted if c.state is not State.CLOSED}
        self._viewers &= self._admitted
        if len(self._admitted) >= self.config.max_connections:
            self.rejected += 1
            return connection.respond(
                HTTPStatus.SERVICE_UNAVAILABLE, f"too many connections (limit {self.config.max_connections})\n"
            )
        if where is Route.LIVE:
            if self._streams is None:
                return routes.text_response(HTTPStatus.NOT_FOUND, "/live: this server has no live view")
            if len(self._viewers) >= MAX_VIEWERS:
                self.rejected += 1
                return connection.respond(
                    HTTPStatus.SERVICE_UNAVAILABLE, f"too many live views (limit {MAX_VIEWERS})\n"
                )
            connection.protocol.available_extensions = LIVE_EXTENSIONS  # per-message deflate on /live only
            self._viewers.add(connection)
        self._admitted.add(connection)
        return None

    def _status(self) -> Response:
        if self.report is None:
            return routes.text_response(HTTPStatus.NOT_FOUND, "/status: this server has no status to report")
        try:
            return routes.json_response(self.report())
        except Exception as exc:  # a report that fails must not take the network thread down
            self.log.warning("websocket: /status: the report failed: %r", exc)
            return routes.text_response(HTTPStatus.INTERNAL_SERVER_ERROR, "the report failed; see the daemon's log")

    async def _session(self, ws: ServerConnection) -> None:
        try:
            where, options = routes.route(ws.request) if ws.request is not None else (Route.INSTRUCTIONS, None)
        except HttpError:  # _admit answered it already
            return
        try:
            if where is Route.LIVE and self._streams is not None and options is not None:
                await self._streams.serve(ws, options)
            else:
                await self._instructions(ws)
        finally:
            self._admitted.discard(ws)
            self._viewers.discard(ws)

    async def _instructions(self, ws: ServerConnection) -> None:
        session = next(self._sessions)
        peer = _peer(ws)
        state = SessionState()
        self._open.add(ws)
        idle = self.config.idle_timeout
        loop = asyncio.get_running_loop()
        last = loop.time()

        def check_idle() -> None:  # one timer per connection, moved on by the time of the last message
            nonlocal timer
            remaining = last + idle - loop.time()
            if remaining > 0:
                timer = loop.call_later(remaining, check_idle)
                return
            task = loop.create_task(ws.close(CLOSE_NORMAL, f"idle for {idle:g} s"))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

        timer = loop.call_later(idle, check_idle)
        try:
            while True:
                batch = [await ws.recv()]
                while len(batch) < MAX_BATCH and _message_waiting(ws):  # recv() returns at once: no other task runs
                    batch.append(await ws.recv())
                last = loop.time()
                state, closing = self._take(session, peer, batch, state)
                if closing is not None:
                    await ws.close(*closing)
                    return
        except ConnectionClosed:
            return
        finally:
            timer.cancel()
            self._open.discard(ws)

    def _take(
        self, session: int, peer: str, batch: list[Data], state: SessionState
    ) -> tuple[SessionState, tuple[int, str] | None]:
        """Apply messages received together, each one transaction, in order; returns the session's state
        after them and, when the connection must close, (code, reason): later messages are not applied."""
        words, offsets, only = pixel_runs(batch)
        i = 0
        while i < len(batch):
            if not state.block and only[i]:  # the common case: a run of colour-pixel messages, in one step
                j = i + 1
                while j < len(batch) and only[j]:
                    j += 1
                self.canvas.paint(session, words[offsets[i] : offsets[j]])
                self.messages += j - i
                i = j
                continue
            message = batch[i]
            i += 1
            if isinstance(message, str):
                self.log.warning("websocket %s sent a text message; closing (1003)", peer)
                return state, (CLOSE_UNSUPPORTED, "text messages are not accepted: send binary 32-bit words")
            try:
                transaction = decode(message, state)
            except InstructionError as exc:
                self.log.warning("websocket %s: %s; message not applied, closing (1007)", peer, exc)
                return state, (CLOSE_INVALID, str(exc)[:120])
            self.canvas.apply(session, transaction)
            self.messages += 1
            state = transaction.state
            if transaction.quit:
                self.canvas.clear(session)
                return state, (CLOSE_NORMAL, "quit")
        return state, None


def _message_waiting(ws: ServerConnection) -> bool:
    """A whole message is already queued, so ``recv()`` returns it without waiting (websockets' frame queue;
    False if this version of websockets keeps it elsewhere: then messages are simply taken one at a time)."""
    frames = getattr(getattr(getattr(ws, "recv_messages", None), "frames", None), "queue", None)
    return bool(frames) and bool(getattr(frames[0], "fin", False))


def _peer(ws: ServerConnection) -> str:
    address = ws.remote_address
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address or "local")


def _bound_port(server: Server) -> int:
    for sock in server.sockets:
        name = sock.getsockname()
        if isinstance(name, tuple):
            return int(name[1])
    return 0
