"""The ASGI app that speaks ClickHouse's HTTP interface over the embedded engine.

Request bodies are read as they arrive, decoded frame by frame and fed straight into a streaming engine INSERT,
so a 1M-row insert never sits in memory twice and never touches a temp file; SELECT results stream out block by
block. Engine calls block, so they run in worker threads (anyio) and the event loop only moves bytes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Generator
from pathlib import Path
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from finpulse.stack.clickhouse.admission import Admission, HostGuard
from finpulse.stack.clickhouse.chdb_session import Context, Engine, Result
from finpulse.stack.clickhouse.errors import QUERY_IS_TOO_LARGE, READONLY, SYNTAX_ERROR, ClickHouseError
from finpulse.stack.clickhouse.http_compression import (
    Decoder,
    Encoder,
    negotiate_encoding,
    request_decoder,
    response_encoder,
)
from finpulse.stack.clickhouse.http_form import is_form, parse_form
from finpulse.stack.clickhouse.http_protocol import (
    Classified,
    Kind,
    QueryRequest,
    classify,
    content_type,
    first_keyword,
    output_format,
    parse_request,
)
from finpulse.stack.clickhouse.metrics import EndpointMetrics
from finpulse.stack.clickhouse.native_blocks import METHODS, BlockDecoder, BlockEncoder, ChainedDecoder, ChainedEncoder
from finpulse.stack.clickhouse.native_revision import NativeRevisionWriter
from finpulse.stack.clickhouse.statement_guard import Policy, check
from finpulse.stack.clickhouse.users import User, Users

log = logging.getLogger(__name__)

INSERT_BATCH_BYTES = 1 << 20  # hand the engine ~1 MiB at a time: fewer thread hops, still constant memory
MAX_QUERY_BYTES = 8 << 20  # default limit of a statement's text (URL query + body; INSERT data is streamed apart)
# Formats whose per-block encodings concatenate into one valid result; others (Arrow, JSON, *WithNames) have
# a global header/footer and are produced in one piece.
STREAM_FORMATS = frozenset(
    {"Native", "TabSeparated", "TSV", "TabSeparatedRaw", "TSVRaw", "CSV", "RowBinary", "JSONEachRow"}
)
STREAM_STATEMENTS = frozenset({"SELECT", "WITH"})
KEEP_ALIVE_HINT_S = 10  # told to clients; the server keeps idle connections longer, so a client never reuses a dead one


class LocalEndpoint:
    def __init__(
        self,
        engine: Engine,
        users: Users,
        metrics: EndpointMetrics,
        display_name: str | None = None,
        *,
        admission: Admission | None = None,
        hosts: HostGuard | None = None,
        user_files: Path | None = None,
        max_query_bytes: int = MAX_QUERY_BYTES,
    ) -> None:
        self.engine = engine
        self.users = users
        self.metrics = metrics
        self.display_name = display_name or socket.gethostname()
        self.admission = admission or Admission()
        self.hosts = hosts or HostGuard()
        self.user_files = user_files
        self.max_query_bytes = max_query_bytes

    def _policy(self, user: User, read_only: bool) -> Policy:
        return Policy(
            user=user.name,
            read_only=read_only or user.readonly == 1,
            file_access=user.is_admin and self.user_files is not None,
            lock_limits=bool(user.limits),
            user_files=self.user_files,
            hidden_tables=user.hidden_tables,
        )

    # --- helpers --------------------------------------------------------------------------------------------------

    def _headers(self, query_id: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {
            "X-ClickHouse-Server-Display-Name": self.display_name,
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": self.engine.timezone,
            "Keep-Alive": f"timeout={KEEP_ALIVE_HINT_S}",
        }
        headers.update(extra or {})
        return headers

    def _error(self, exc: ClickHouseError, query_id: str) -> Response:
        self.metrics.errors.labels(exc.name).inc()
        body = f"{exc.text} (version {self.engine.version})\n"
        headers = self._headers(query_id, {"X-ClickHouse-Exception-Code": str(exc.code)})
        if exc.http_status == 503:
            headers["Retry-After"] = "1"
        return PlainTextResponse(body, status_code=exc.http_status, headers=headers)

    @staticmethod
    def _summary(result: Result | None, result_rows: int = 0) -> str:
        r = result or Result(b"")
        return json.dumps(
            {
                "read_rows": str(r.rows_read),
                "read_bytes": str(r.bytes_read),
                "written_rows": str(r.written_rows),
                "written_bytes": str(r.written_bytes),
                "total_rows_to_read": str(r.rows_read),
                "result_rows": str(result_rows),
                "result_bytes": str(len(r.data)),
                "elapsed_ns": str(int(r.elapsed_s * 1e9)),
            }
        )

    async def _open(self, spec: QueryRequest, user: Any, readonly: int) -> tuple[Context, Callable[[], None]]:
        """A context once a slot is free (503 when the queue is full or the wait too long). The returned release
        is synchronous and quick; it frees the engine handle and the slot, from the event loop."""
        await self.admission.acquire()
        try:
            context, release_engine = await self._thread(
                lambda: self.engine.open_context(
                    user,
                    readonly=readonly,
                    database=spec.database,
                    settings=spec.settings,
                    session_id=spec.session_id,
                    session_timeout=spec.session_timeout,
                    session_check=spec.session_check,
                )
            )
        except BaseException:
            self.admission.release()
            raise
        released = [False]

        def release() -> None:
            if not released[0]:
                released[0] = True
                try:
                    release_engine()
                finally:
                    self.admission.release()

        return context, release

    async def _thread(self, func: Callable[..., Any], *args: Any) -> Any:
        # Engine calls use their own thread pool, sized above the admission limit, so a full queue can never
        # starve it (waiting requests hold no thread) and the release of a slot never waits for a thread.
        return await anyio.to_thread.run_sync(func, *args, limiter=self.admission.threads)

    # --- routes ---------------------------------------------------------------------------------------------------

    async def ping(self, request: Request) -> Response:
        return PlainTextResponse("Ok.\n")

    async def metrics_route(self, request: Request) -> Response:
        refused = self.hosts.refusal(request.headers)
        if refused:
            return self._error(refused, "")
        self.metrics.sessions.set(self.engine.sessions)
        self.metrics.queued.set(self.admission.waiting)
        return Response(self.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def query(self, request: Request) -> Response:
        started = time.perf_counter()
        query_id = request.query_params.get("query_id") or str(uuid.uuid4())
        user = None
        if request.method == "GET" and "query" not in request.query_params:
            return PlainTextResponse("Ok.\n")  # ClickHouse's answer to a bare GET /
        try:
            refused = self.hosts.refusal(request.headers)
            if refused:
                raise refused
            spec = parse_request(request.query_params.multi_items(), request.headers)
            query_id = spec.query_id or query_id
            user = self.users.authenticate(spec.credentials)
            # GET may only read, as in ClickHouse (readonly=2: settings may change, data may not), whatever the
            # session: the statement check below does not depend on the engine context's own level.
            read_only = request.method in ("GET", "HEAD")
            readonly = 2 if read_only else 0
            if read_only and spec.settings.get("readonly", "2") not in ("1", "2"):
                raise ClickHouseError(READONLY, f"{user.name}: Cannot modify 'readonly' setting in readonly mode")
            policy = self._policy(user, read_only)
            if request.method == "POST" and is_form(request.headers.get("content-type")):
                return await self._form_query(request, spec, user, readonly, policy, query_id, started)
            body = self._body(request, spec)
            text = bytearray(spec.query.encode("utf-8"))
            if text and request.method == "POST":
                text += b"\n"
            classified = Classified(Kind.NEED_MORE)
            # The head is re-classified only when the text has doubled since the last look: linear in its length
            # however small the pieces arrive (re-scanning on every piece was quadratic on a body of spaces).
            next_look = 0
            async for piece in body:
                text += piece
                if len(text) < next_look and len(text) <= self.max_query_bytes:
                    continue
                classified = classify(bytes(text), complete=False)
                if classified.kind is not Kind.NEED_MORE:
                    break
                self._check_size(text)  # only the statement counts: INSERT data after its head is streamed
                next_look = 2 * len(text)
            if classified.kind is Kind.NEED_MORE:
                classified = classify(bytes(text), complete=True)
            if classified.kind is Kind.DATA_INSERT:
                check(classified.statement, policy, spec.params)
                return await self._insert(spec, user, readonly, classified, text, body, query_id, started)
            async for piece in body:
                text += piece
                self._check_size(text)
            sql = bytes(text).decode("utf-8", errors="surrogateescape").strip()
            if not sql:
                raise ClickHouseError(SYNTAX_ERROR, "Empty query")
            check(sql, policy, spec.params)
            return await self._query(request, spec, user, readonly, sql, query_id, started)
        except ClickHouseError as exc:
            if user is not None and exc.message.startswith("default: "):
                # The engine runs every context as its one built-in user; name the user who actually asked.
                exc = ClickHouseError(exc.code, f"{user.name}: {exc.message.removeprefix('default: ')}", exc.name)
            log.info("query failed", extra={"query_id": query_id, "code": exc.code, "error": exc.name})
            return self._error(exc, query_id)
        except ClientDisconnect:
            log.info("client went away mid-request", extra={"query_id": query_id})
            return Response(status_code=499)

    @staticmethod
    def _encoder_factory(spec: QueryRequest, encoding: str | None) -> Callable[[], Encoder] | None:
        """Native blocks (compress=1) and/or HTTP compression, the blocks inside, as ClickHouse layers them."""
        if spec.native_compress:
            method = METHODS[spec.native_method]
            if encoding:
                return lambda: ChainedEncoder(BlockEncoder(method), response_encoder(encoding))
            return lambda: BlockEncoder(method)
        if encoding:
            return lambda: response_encoder(encoding)
        return None

    def _check_size(self, text: bytearray) -> None:
        if len(text) > self.max_query_bytes:
            raise ClickHouseError(
                QUERY_IS_TOO_LARGE,
                f"Query is too large (more than {self.max_query_bytes} bytes, FINPULSE_CLICKHOUSE_MAX_QUERY_BYTES): "
                "send data as INSERT ... FORMAT <format> followed by the rows",
            )

    def _form_too_large(self) -> ClickHouseError:
        return ClickHouseError(
            QUERY_IS_TOO_LARGE,
            f"Form is too large (more than {self.max_query_bytes} bytes, FINPULSE_CLICKHOUSE_MAX_QUERY_BYTES): the "
            "query and its parameters travel in the form; send bulk data as INSERT ... FORMAT <format> instead",
        )

    async def _form_query(
        self,
        request: Request,
        spec: QueryRequest,
        user: User,
        readonly: int,
        policy: Policy,
        query_id: str,
        started: float,
    ) -> Response:
        """A multipart form body (http_form.py): the statement and ``param_*`` values come from its fields, and then
        go through exactly the checks of a URL query. URL settings were parsed already and stay the only settings;
        URL query parameters win over form ones, as in ClickHouse."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_query_bytes:
            raise self._form_too_large()  # refused before reading a byte of it
        raw = bytearray()
        async for piece in self._body(request, spec):
            raw += piece
            if len(raw) > self.max_query_bytes:  # decoded size: a small gzip body cannot unpack past the limit
                raise self._form_too_large()
        # In a worker thread: a form of many small fields takes a while, and the event loop keeps serving meanwhile.
        form = await anyio.to_thread.run_sync(parse_form, bytes(raw), request.headers["content-type"])
        del raw[:]
        if form.ignored:
            log.debug("form fields ignored (not settings)", extra={"query_id": query_id, "fields": form.ignored[:20]})
        spec = dataclasses.replace(spec, query=spec.query + form.query, params={**form.params, **spec.params})
        text = bytearray(spec.query.encode("utf-8", errors="surrogateescape"))
        self._check_size(text)
        classified = classify(bytes(text), complete=True)
        if classified.kind is Kind.DATA_INSERT:  # INSERT ... FORMAT X with its rows inside the query field
            check(classified.statement, policy, spec.params)
            return await self._insert(spec, user, readonly, classified, text, _no_body(), query_id, started)
        sql = spec.query.strip()
        if not sql:
            raise ClickHouseError(SYNTAX_ERROR, "Empty query: the form has no query field")
        check(sql, policy, spec.params)
        return await self._query(request, spec, user, readonly, sql, query_id, started)

    async def _body(self, request: Request, spec: QueryRequest) -> AsyncIterator[bytes]:
        if request.method != "POST":
            return
        decoder: Decoder = request_decoder(request.headers.get("content-encoding"))
        if spec.native_decompress:
            decoder = ChainedDecoder(decoder, BlockDecoder(verify=spec.verify_checksums))
        async for chunk in request.stream():
            if chunk:
                self.metrics.request_bytes.inc(len(chunk))
                data = decoder.feed(chunk)
                if data:
                    yield data
        tail = decoder.finish()
        if tail:
            yield tail

    async def _insert(
        self,
        spec: QueryRequest,
        user: Any,
        readonly: int,
        classified: Classified,
        text: bytearray,
        body: AsyncIterator[bytes],
        query_id: str,
        started: float,
    ) -> Response:
        context, release = await self._open(spec, user, readonly)
        self.metrics.in_flight.inc()
        try:
            inserter = await self._thread(
                context.begin_insert, classified.statement, classified.fmt, self.engine.spool_dir
            )
            try:
                pending = bytearray(text[classified.data_offset :])
                del text[:]
                async for piece in body:
                    pending += piece
                    if len(pending) >= INSERT_BATCH_BYTES:
                        batch, pending = bytes(pending), bytearray()
                        await self._thread(inserter.append, batch)
                await self._thread(inserter.append, bytes(pending))
                result = await self._thread(inserter.finish)
            except BaseException:
                await self._thread(inserter.cancel)
                raise
        finally:
            self.metrics.in_flight.dec()
            release()
        self.metrics.queries.labels("insert").inc()
        self.metrics.inserted_rows.inc(result.written_rows)
        self.metrics.inserted_bytes.inc(inserter.received_bytes)
        self.metrics.duration.labels("insert").observe(time.perf_counter() - started)
        log.debug("insert", extra={"query_id": query_id, "rows": result.written_rows, "bytes": inserter.received_bytes})
        headers = self._headers(
            query_id, {"X-ClickHouse-Summary": self._summary(result), "X-ClickHouse-Format": classified.fmt}
        )
        return Response(b"", headers=headers, media_type="text/plain; charset=UTF-8")

    async def _query(
        self, request: Request, spec: QueryRequest, user: Any, readonly: int, sql: str, query_id: str, started: float
    ) -> Response:
        fmt = output_format(sql, spec.default_format)
        encoding = negotiate_encoding(request.headers.get("accept-encoding")) if spec.http_compression else None
        headers = {"X-ClickHouse-Format": fmt}
        if encoding:
            headers["Content-Encoding"] = encoding
        make_encoder = self._encoder_factory(spec, encoding)
        # Native for a client that names its protocol revision (clickhouse-go): blocks rewritten to that layout.
        revision = spec.client_protocol_version if fmt == "Native" else 0
        stream = fmt in STREAM_FORMATS and not spec.wait_end_of_query and first_keyword(sql) in STREAM_STATEMENTS
        context, release = await self._open(spec, user, readonly)
        self.metrics.in_flight.inc()
        if not stream:
            try:
                result = await self._thread(context.run, sql, spec.default_format, spec.params)
            finally:
                self.metrics.in_flight.dec()
                release()
            self.metrics.queries.labels("query").inc()
            self.metrics.duration.labels("query").observe(time.perf_counter() - started)
            data = result.data
            if revision:
                rewriter = NativeRevisionWriter(revision)
                data = rewriter.feed(data) + rewriter.finish()
            if make_encoder:
                encoder = make_encoder()
                data = encoder.compress(data) + encoder.flush()
            self.metrics.response_bytes.inc(len(data))
            headers["X-ClickHouse-Summary"] = self._summary(result)
            return Response(data, headers=self._headers(query_id, headers), media_type=content_type(fmt))
        # Streamed: the first block is fetched before the status line, so an error in planning or in the first
        # block still gets its proper status; a later error aborts the connection (see _stream_body).
        chunks = context.stream(sql, spec.default_format, spec.params)
        try:
            first = await self._thread(next, chunks, None)
            # The first block is rewritten before the status line too: an unsupported type gets its own status.
            writer = NativeRevisionWriter(revision) if revision else None
            if writer and first is not None:
                first = writer.feed(first)
        except BaseException:
            chunks.close()
            self.metrics.in_flight.dec()
            release()
            raise
        headers["X-ClickHouse-Summary"] = self._summary(None)
        return StreamingResponse(
            self._stream_body(first, chunks, release, make_encoder, query_id, started, writer),
            headers=self._headers(query_id, headers),
            media_type=content_type(fmt),
        )

    async def _stream_body(
        self,
        first: bytes | None,
        chunks: Generator[bytes, None, None],
        release: Callable[[], None],
        make_encoder: Callable[[], Encoder] | None,
        query_id: str,
        started: float,
        writer: NativeRevisionWriter | None = None,
    ) -> AsyncIterator[bytes]:
        encoder = make_encoder() if make_encoder else None
        try:
            chunk = first  # already through the writer
            while chunk is not None:
                out = encoder.compress(chunk) if encoder and chunk else chunk
                if out:
                    self.metrics.response_bytes.inc(len(out))
                    yield out
                try:
                    chunk = await self._thread(next, chunks, None)
                    if writer and chunk is not None:
                        chunk = writer.feed(chunk)
                except ClickHouseError as exc:
                    # Like ClickHouse: the error text goes into the body; then the connection is aborted so no
                    # client can take the partial result for a complete one.
                    self.metrics.errors.labels(exc.name).inc()
                    log.warning("query failed mid-stream", extra={"query_id": query_id, "error": exc.name})
                    error = f"\n{exc.text}\n".encode()
                    yield encoder.compress(error) + encoder.flush() if encoder else error
                    raise
            rest = writer.finish() if writer else b""
            if encoder:
                rest = (encoder.compress(rest) if rest else b"") + encoder.flush()
            if rest:
                yield rest
            self.metrics.queries.labels("query").inc()
            self.metrics.duration.labels("query").observe(time.perf_counter() - started)
        finally:
            # Runs on normal end, error and client disconnect; both calls are quick and must not be skipped.
            chunks.close()
            self.metrics.in_flight.dec()
            release()


async def _no_body() -> AsyncIterator[bytes]:
    return
    yield  # an async generator that yields nothing


def create_app(
    engine: Engine,
    users: Users,
    *,
    metrics: EndpointMetrics | None = None,
    display_name: str | None = None,
    admission: Admission | None = None,
    hosts: HostGuard | None = None,
    user_files: Path | None = None,
    max_query_bytes: int = MAX_QUERY_BYTES,
) -> Starlette:
    endpoint = LocalEndpoint(
        engine,
        users,
        metrics or EndpointMetrics(),
        display_name,
        admission=admission,
        hosts=hosts,
        user_files=user_files,
        max_query_bytes=max_query_bytes,
    )
    routes = [
        Route("/", endpoint.query, methods=["GET", "POST"]),
        Route("/query", endpoint.query, methods=["GET", "POST"]),
        Route("/ping", endpoint.ping, methods=["GET", "HEAD"]),
        Route("/replicas_status", endpoint.ping, methods=["GET"]),
        Route("/metrics", endpoint.metrics_route, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.state.endpoint = endpoint
    return app
