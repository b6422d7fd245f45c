"""A raw asyncio TCP server on a loopback address, for faults an HTTP server cannot script.

`RawServer` reads each request head and hands the connection to a `Behaviour`
coroutine, which writes whatever bytes it likes (or none) and may close the
connection at any point. Ready-made behaviours cover a close without a
response, a close in the middle of the body, no response at all, a response
sent one byte at a time, and a kept-alive connection that the server closes
between two requests.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

Behaviour = Callable[["Connection"], Awaitable[None]]
"""Serves one connection: reads requests with `Connection.read_request` and writes replies."""

MAX_HEAD_BYTES = 64 * 1024
"""Maximum size of a request head in bytes; a longer head ends the connection."""


class Connection:
    """One accepted TCP connection; `number` counts the server's connections from 1."""

    def __init__(self, server: RawServer, number: int, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.number = number
        self.reader = reader
        self.writer = writer

    async def read_request(self) -> bytes | None:
        """Read one request head up to the blank line; None if the client closed first.

        Requests of the SDK's status calls have no body, so the head is the whole request.
        """
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return None
        self.server.requests.append(head)
        return head

    async def write(self, data: bytes) -> None:
        """Send `data` and wait until the socket has taken it."""
        self.writer.write(data)
        await self.writer.drain()

    def close(self) -> None:
        """Close the connection without any further bytes."""
        self.writer.close()


class RawServer:
    """TCP server on `host` (a loopback address) that serves each connection with `behaviour`.

    Counts the connections accepted and still open, and records each request
    head. `close()` closes every open connection and cancels the behaviours
    still running, so a behaviour that never responds does not outlive a test.
    """

    def __init__(self, behaviour: Behaviour, host: str = "127.0.0.1") -> None:
        self._behaviour = behaviour
        self._host = host
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.requests: list[bytes] = []
        self.connections_accepted = 0
        self.open_connections = 0

    @property
    def api_domain(self) -> str:
        """Base URL such as http://127.0.0.1:PORT, to pass as `api_domain`."""
        if self._server is None:
            raise RuntimeError("RawServer is not running: use 'async with RawServer(...)'")
        port = self._server.sockets[0].getsockname()[1]
        return f"http://{self._host}:{port}"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, self._host, 0,
                                                  limit=MAX_HEAD_BYTES)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop accepting, close every connection and wait for the behaviours to end."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.wait(self._handlers)
        await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.connections_accepted += 1
        self.open_connections += 1
        try:
            await self._behaviour(Connection(self, self.connections_accepted, reader, writer))
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.open_connections -= 1
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()


def http_response(status: int, body: bytes, *, content_type: str = "application/json",
                  headers: dict[str, str] | None = None, keep_alive: bool = False) -> bytes:
    """Build the bytes of a complete HTTP/1.1 response with a Content-Length."""
    lines = [f"HTTP/1.1 {status} X", f"Content-Type: {content_type}",
             f"Content-Length: {len(body)}",
             "Connection: keep-alive" if keep_alive else "Connection: close"]
    lines.extend(f"{name}: {value}" for name, value in (headers or {}).items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def close_without_response(connection: Connection) -> None:
    """Read the request, then close the connection without sending a byte."""
    await connection.read_request()
    connection.close()


def close_mid_body(response: bytes, sent_bytes: int) -> Behaviour:
    """Send the first `sent_bytes` bytes of `response`, then close the connection."""

    async def behave(connection: Connection) -> None:
        await connection.read_request()
        await connection.write(response[:sent_bytes])
        connection.close()

    return behave


async def never_respond(connection: Connection) -> None:
    """Read the request and never respond; return once the client closes the connection."""
    await connection.read_request()
    while await connection.reader.read(1024):
        pass


def trickle(response: bytes, interval: float) -> Behaviour:
    """Send `response` one byte every `interval` seconds; stop when the client closes."""

    async def behave(connection: Connection) -> None:
        await connection.read_request()
        for index in range(len(response)):
            await connection.write(response[index:index + 1])
            try:
                async with asyncio.timeout(interval):
                    if not await connection.reader.read(1024):
                        return
            except TimeoutError:
                pass

    return behave


def endless_body(head: bytes, chunk: bytes = b" " * 65536) -> Behaviour:
    """Send `head`, then `chunk` over and over until the client closes the connection.

    With a chunked head each write is framed as one HTTP chunk, so the body
    never ends. With a Content-Length head the raw bytes are sent.
    """
    chunked = b"transfer-encoding: chunked" in head.lower()
    frame = b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk

    async def behave(connection: Connection) -> None:
        await connection.read_request()
        await connection.write(head)
        while True:
            await connection.write(frame)

    return behave


def drop_second_request(responses: list[bytes]) -> Behaviour:
    """Respond to the first request of each connection, then close on its second request.

    Connection n (from 1) sends `responses[n - 1]`, and the last response
    repeats. Each response must carry `Connection: keep-alive`, so the client
    keeps the connection in its pool and sends its next poll on it, and that
    poll finds the connection closed without a response.
    """

    async def behave(connection: Connection) -> None:
        index = min(connection.number, len(responses)) - 1
        if await connection.read_request() is None:
            return
        await connection.write(responses[index])
        await connection.read_request()
        connection.close()

    return behave
