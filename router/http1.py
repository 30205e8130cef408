"""A small keep-alive HTTP/1.1 client for the hot path to the engines.

Why not httpx here: on the gateway's hot path httpx + httpcore + anyio cost several times the CPU
of the rest of the request (measured with py-spy: ~25% of the gateway's CPU), and send headers and
body in two writes. This client writes each request in one syscall over asyncio streams and reads
Content-Length, chunked or until-close bodies; SSE lines are read incrementally. httpx is still
used for everything off the hot path (load polls, predictor probes).
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

MAX_IDLE = 512


class UpstreamConnectError(Exception):
    """The engine could not be reached (no byte was sent)."""


class Response:
    def __init__(
        self,
        pool: Http1Pool,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        status: int,
        headers: dict[str, str],
    ):
        self._pool, self._reader, self._writer = pool, reader, writer
        self.status, self.headers = status, headers
        self._done = False
        length = headers.get("content-length")
        self._length = int(length) if length is not None else None
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self._keep = headers.get("connection", "").lower() != "close" and (
            self._chunked or self._length is not None
        )

    async def chunks(self):
        """The body, as it arrives."""
        r = self._reader
        if self._chunked:
            while True:
                head = await r.readline()
                if not head:
                    raise ConnectionError("engine closed the connection mid-answer")
                size = int(head.split(b";", 1)[0], 16)
                if size == 0:
                    while (await r.readline()) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                data = await r.readexactly(size)
                await r.readexactly(2)
                yield data
        elif self._length is not None:
            if self._length:
                yield await r.readexactly(self._length)
        else:
            while data := await r.read(65536):
                yield data
        self._done = True
        self.release()

    async def read(self) -> bytes:
        return b"".join([c async for c in self.chunks()])

    async def lines(self):
        """Body lines without their line ends (SSE)."""
        buf = b""
        async for chunk in self.chunks():
            buf += chunk
            *complete, buf = buf.split(b"\n")
            for line in complete:
                yield line.rstrip(b"\r")
        if buf:
            yield buf.rstrip(b"\r")

    def release(self) -> None:
        """Back to the pool if the body was read to its end, else close (the engine sees a
        disconnect and cancels the request)."""
        if self._writer is None:
            return
        if self._done and self._keep:
            self._pool.put(self._reader, self._writer)
        else:
            self._writer.close()
        self._writer = None  # type: ignore[assignment]


class Http1Pool:
    """Keep-alive connections to one upstream (`http://host:port`)."""

    def __init__(self, base_url: str):
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"engine url {base_url!r}: only http://host[:port] is supported")
        self.host, self.port = parts.hostname, parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self._host_header = f"{self.host}:{self.port}".encode()
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    def put(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._idle) < MAX_IDLE and not writer.is_closing():
            self._idle.append((reader, writer))
        else:
            writer.close()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.open_connection(self.host, self.port, limit=1 << 22)
        except OSError as exc:
            raise UpstreamConnectError(f"{self.host}:{self.port}: {exc}") from exc

    def _head(self, path: str, body: bytes, headers: bytes = b"") -> bytes:
        return (
            b"POST "
            + (self.prefix + path).encode()
            + b" HTTP/1.1\r\nHost: "
            + self._host_header
            + b"\r\n"
            + headers
            + b"Content-Type: application/json\r\nAccept: */*\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )

    async def post(self, path: str, body: bytes, headers: bytes = b"") -> Response:
        """POST `body` (JSON) with extra raw `headers` lines; returns once the status line and
        headers are in. A reused connection the server had closed is retried once on a fresh one."""
        data = self._head(path, body, headers)
        while self._idle:
            reader, writer = self._idle.pop()
            if writer.is_closing() or reader.at_eof():
                writer.close()
                continue
            try:
                return await self._exchange(reader, writer, data)
            except (ConnectionError, asyncio.IncompleteReadError, _Closed):
                writer.close()
        reader, writer = await self._connect()
        try:
            return await self._exchange(reader, writer, data)
        except _Closed as exc:
            writer.close()
            raise ConnectionError("engine closed the connection before answering") from exc

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
    ) -> Response:
        try:
            writer.write(data)
            status_line = await reader.readline()
            if not status_line:
                raise _Closed()
            status = int(status_line.split(None, 2)[1])
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
        except BaseException:
            # Cancelled (client gone, admin cancel, timeout, lost lease) or failed before the
            # answer's head: close, so the engine sees the disconnect and stops the request. A
            # non-streamed answer's head only comes when it is finished: this is its one chance.
            writer.close()
            raise
        return Response(self, reader, writer, status, headers)

    def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


class _Closed(Exception):
    pass
