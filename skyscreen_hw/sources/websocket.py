"""The websocket server of the instruction stream: a thin asyncio shell around the pure decoder.

It runs its own event loop in a thread of its own and touches only the Canvas. Each binary message is
decoded whole and applied in one step; bad input closes that connection (1003 text, 1007 malformed)
with one log line, and everyone else carries on. Sizes are bounded: message bytes, connection count,
idle time, handshake time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import logging
import socket
import threading
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from skyscreen_hw.config import WebsocketConfig
from skyscreen_hw.errors import SkyscreenError
from skyscreen_hw.sources.canvas import Canvas
from skyscreen_hw.sources.instructions import InstructionError, SessionState, decode

CLOSE_NORMAL, CLOSE_UNSUPPORTED, CLOSE_INVALID = 1000, 1003, 1007
START_TIMEOUT = 10.0


def token_from(request: Request) -> str:
    """The client's token: `?token=...` in the URL, or an `Authorization: Bearer ...` header."""
    query = parse_qs(urlsplit(request.path).query)
    if query.get("token"):
        return query["token"][0]
    auth = request.headers.get("Authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else ""


class InstructionServer:
    """Serves `[websocket]` in a background thread; `start()` returns once it listens (or raises)."""

    def __init__(
        self, config: WebsocketConfig, canvas: Canvas, log: logging.Logger, sock: int | socket.socket | None = None
    ) -> None:
        self.config = config
        self.canvas = canvas
        self.log = log
        try:
            self._sock = socket.socket(fileno=sock) if isinstance(sock, int) else sock
        except OSError as exc:
            raise SkyscreenError(f"socket activation: fd {sock} is not a usable socket ({exc})") from None
        self._sessions = itertools.count(1)
        self._admitted: set[ServerConnection] = set()
        self._open: set[ServerConnection] = set()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self.port = 0
        self.messages = 0
        self.rejected = 0

    @property
    def clients(self) -> int:
        return len(self._open)

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="websocket", daemon=True)
        self._thread.start()
        if not self._started.wait(START_TIMEOUT):
            raise SkyscreenError("websocket server did not start within 10 s")
        if self._error is not None:
            where = f"{self.config.host}:{self.config.port}"
            raise SkyscreenError(
                f"[websocket] cannot listen on {where}: {self._error}"
                " (is another skyscreen-hw running? choose another [websocket] port, or enabled = false)"
            ) from self._error

    def stop(self) -> None:
        """Close every connection (1001 going away) and the listening socket; waits a bounded time."""
        if self._loop is not None and self._stop is not None and self._thread is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=2.0)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start() or logged, never lost
            if not self._started.is_set():
                self._error = exc
                self._started.set()
            else:
                self.log.error("websocket server stopped: %s", exc)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        cfg = self.config
        where = {"sock": self._sock} if self._sock is not None else {"host": cfg.host, "port": cfg.port}
        async with serve(
            self._session,
            process_request=self._admit,
            max_size=cfg.max_message_bytes,
            max_queue=16,
            open_timeout=min(START_TIMEOUT, cfg.idle_timeout),
            close_timeout=1.0,
            server_header=None,
            **where,
        ) as server:
            self.port = _bound_port(server)
            self._started.set()
            await self._stop.wait()
            server.close(close_connections=True)
            await server.wait_closed()

    # -- per connection -----------------------------------------------------------------------------

    def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        """Before the handshake: check the token and the connection limit."""
        token = self.config.token
        if token and not hmac.compare_digest(token_from(request).encode(), token.encode()):
            self.rejected += 1
            return connection.respond(HTTPStatus.UNAUTHORIZED, "a valid token is required: ?token=... or Bearer\n")
        self._admitted = {c for c in self._admitted if c.state is not State.CLOSED}
        if len(self._admitted) >= self.config.max_connections:
            self.rejected += 1
            return connection.respond(
                HTTPStatus.SERVICE_UNAVAILABLE, f"too many connections (limit {self.config.max_connections})\n"
            )
        self._admitted.add(connection)
        return None

    async def _session(self, ws: ServerConnection) -> None:
        session = next(self._sessions)
        peer = _peer(ws)
        state = SessionState()
        self._open.add(ws)
        try:
            while True:
                try:
                    async with asyncio.timeout(self.config.idle_timeout):
                        message = await ws.recv()
                except TimeoutError:
                    await ws.close(CLOSE_NORMAL, f"idle for {self.config.idle_timeout:g} s")
                    return
                if isinstance(message, str):
                    self.log.warning("websocket %s sent a text message; closing (1003)", peer)
                    await ws.close(CLOSE_UNSUPPORTED, "text messages are not accepted: send binary 32-bit words")
                    return
                try:
                    transaction = decode(message, state)
                except InstructionError as exc:
                    self.log.warning("websocket %s: %s; message not applied, closing (1007)", peer, exc)
                    await ws.close(CLOSE_INVALID, str(exc)[:120])
                    return
                self.canvas.apply(session, transaction)
                self.messages += 1
                state = transaction.state
                if transaction.quit:
                    self.canvas.clear(session)
                    await ws.close(CLOSE_NORMAL, "quit")
                    return
        except ConnectionClosed:
            return
        finally:
            self._open.discard(ws)
            self._admitted.discard(ws)


def _peer(ws: ServerConnection) -> str:
    address = ws.remote_address
    return f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)


def _bound_port(server: Server) -> int:
    for sock in server.sockets:
        name = sock.getsockname()
        if isinstance(name, tuple):
            return int(name[1])
    return 0
