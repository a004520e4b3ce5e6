"""The embedded OpenAI-compatible HTTP server (stdlib only).

It speaks real HTTP/1.1 on loopback (keep-alive, chunked streams) so that the
code under test runs its actual HTTP stack: connection pools, timeouts, retries
and the httpx2 instrumentation all behave as against a real provider.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import re
import selectors
import socket
import socketserver
import sys
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from . import _responses as responses
from . import _tokens as tokens
from ._faults import Fault

__all__ = ["Endpoint", "MockLLMServer", "RecordedRequest", "Shape"]

_log = logging.getLogger("otel_llm.testing")
_Server = TypeVar("_Server", bound="MockLLMServer")

Shape = Literal["openai", "azure"]
Endpoint = Literal["chat.completions", "embeddings"]

_ROUTES: tuple[tuple[re.Pattern[str], Shape, Endpoint], ...] = (
    (re.compile(r"/v1/chat/completions/?"), "openai", "chat.completions"),
    (re.compile(r"/v1/embeddings/?"), "openai", "embeddings"),
    (re.compile(r"/openai/deployments/([^/]+)/chat/completions/?"), "azure", "chat.completions"),
    (re.compile(r"/openai/deployments/([^/]+)/embeddings/?"), "azure", "embeddings"),
)
_MAX_N = 128
_MAX_DIMENSIONS = 65536
_MALFORMED_JSON = b'{"id":"chatcmpl-malformed","object":"chat.completion","choices":[{"index":0,"message":{"role":'
_MALFORMED_EVENT = b'data: {"id":"chatcmpl-malformed","object":"chat.completion.chunk","choices":[{\n\n'
_DONE = responses.sse_event("[DONE]")


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the server received on a known route, as the client sent it."""

    method: str
    path: str
    """The URL path, without the query string."""
    query: dict[str, str]
    headers: dict[str, str]
    """Header names lower-cased; repeated headers joined with ``", "``."""
    body: dict[str, Any] | None
    """The parsed JSON body, or ``None`` when it was missing or not a JSON object."""
    model: str | None
    """The body's ``model`` (OpenAI shape) or the deployment in the URL (Azure shape)."""
    shape: Shape
    endpoint: Endpoint
    connection: int
    """Id of the TCP connection it came on: equal ids mean a reused connection."""


class MockLLMServer:
    """An OpenAI-compatible server on loopback for tests and offline demos.

    Serves chat completions (plain and streamed) and embeddings in the OpenAI
    URL shape (``/v1/...``, ``Authorization: Bearer``) and the Azure OpenAI shape
    (``/openai/deployments/{deployment}/...?api-version=``, ``api-key``), with
    deterministic replies and token usage (see :mod:`otel_llm.testing._tokens`),
    and applies scripted :class:`Fault` s queued per model.

    >>> with MockLLMServer() as server:
    ...     client = openai.OpenAI(base_url=server.base_url, api_key="test")

    Replies are ``reply_words`` words long (``mock reply`` then the last user
    message's words, cycled); ``max_tokens`` / ``max_completion_tokens`` cut
    them (``finish_reason="length"``). Embeddings are ``embedding_dimensions``
    long unless the request asks for ``dimensions``.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        reply_words: int = 16,
        embedding_dimensions: int = 8,
    ) -> None:
        if not _positive_int(reply_words):
            raise ValueError(f"reply_words must be an integer >= 1, got {reply_words!r}")
        if not _positive_int(embedding_dimensions) or embedding_dimensions > _MAX_DIMENSIONS:
            raise ValueError(
                f"embedding_dimensions must be an integer 1-{_MAX_DIMENSIONS}, got {embedding_dimensions!r}"
            )
        self.host = host
        self.reply_words = reply_words
        self.embedding_dimensions = embedding_dimensions
        self._requested_port = port
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._faults: dict[str, deque[Fault]] = {}
        self._fault_rates: dict[str, tuple[float, tuple[Fault, ...], random.Random]] = {}
        self._seen_prompts: set[str] = set()
        self._connections_opened = 0
        self._connection_ids = itertools.count(1)
        self._open_sockets: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._lifecycle = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._address: tuple[str, int] | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self: _Server) -> _Server:
        """Bind (a free port when ``port=0``) and serve in a daemon thread; returns ``self``."""
        with self._lifecycle:
            if self._httpd is not None:
                return self
            self._stopping.clear()
            httpd = _HTTPServer((self.host, self._requested_port), self)
            host, port = httpd.server_address[:2]
            self._address = (str(host), int(port))
            thread = threading.Thread(target=httpd.serve_until_woken, name=f"otel-llm-mock-server:{port}", daemon=True)
            thread.start()
            self._httpd, self._thread = httpd, thread
        return self

    def stop(self) -> None:
        """Stop serving, close the listening socket and open connections, join the thread.

        Open keep-alive connections are shut down too, so clients holding
        pooled connections see the server gone instead of a zombie answering.
        """
        with self._lifecycle:
            httpd, thread = self._httpd, self._thread
            if httpd is None or thread is None:
                return
            self._httpd = self._thread = None
            self._stopping.set()  # wakes handlers sleeping in a delay fault
            httpd.wake()
            thread.join()
            httpd.server_close()
            with self._lock:
                open_sockets = list(self._open_sockets)
            for sock in open_sockets:
                _shutdown(sock)

    def __enter__(self: _Server) -> _Server:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        if self._address is None:
            return "MockLLMServer(not started)"
        state = "running" if self._httpd is not None else "stopped"
        return f"MockLLMServer(url={self.url!r}, {state})"

    # -- addresses ---------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return self._bound()[1]

    @property
    def url(self) -> str:
        """``http://host:port``, the server root."""
        host, port = self._bound()
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-shaped base URL (``.../v1``), for ``openai.OpenAI(base_url=...)``."""
        return f"{self.url}/v1"

    @property
    def azure_endpoint(self) -> str:
        """The Azure-shaped root, for ``openai.AzureOpenAI(azure_endpoint=...)``."""
        return self.url

    def _bound(self) -> tuple[str, int]:
        if self._address is None:
            raise RuntimeError("MockLLMServer is not started: call start() or use it as a context manager")
        return self._address

    # -- observation and scripting -----------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the requests received on known routes, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def connections_opened(self) -> int:
        """TCP connections accepted since start (or the last :meth:`reset`)."""
        with self._lock:
            return self._connections_opened

    def add_faults(self, model: str, *faults: Fault) -> None:
        """Queue ``faults`` for ``model`` (OpenAI body model or Azure deployment).

        Each later request for that model takes the next fault (FIFO); once the
        queue is empty requests are served normally. Safe while serving.
        """
        for fault in faults:
            if not isinstance(fault, Fault):
                raise TypeError(f"expected Fault, got {type(fault).__name__}")
        with self._lock:
            self._faults.setdefault(model, deque()).extend(faults)

    def set_fault_rate(self, model: str, rate: float, faults: Sequence[Fault], *, seed: int | None = None) -> None:
        """Fault a share ``rate`` (0-1) of the requests for ``model`` at random, with one of ``faults`` each.

        For soak tests; queued faults (:meth:`add_faults`) are applied first.
        A ``seed`` makes the sequence repeatable.
        """
        if not 0 <= rate <= 1:
            raise ValueError(f"rate must be between 0 and 1, got {rate!r}")
        if not faults or not all(isinstance(fault, Fault) for fault in faults):
            raise TypeError("faults must be a non-empty sequence of Fault")
        with self._lock:
            self._fault_rates[model] = (rate, tuple(faults), random.Random(seed))

    def reset(self) -> None:
        """Forget recorded requests, queued faults, the connection count and cached prompts."""
        with self._lock:
            self._requests.clear()
            self._faults.clear()
            self._fault_rates.clear()
            self._seen_prompts.clear()
            self._connections_opened = 0

    # -- used by the request handler ---------------------------------------

    def _connection_opened(self, sock: socket.socket) -> int:
        with self._lock:
            self._connections_opened += 1
            if self._stopping.is_set():  # accepted just before stop(): no serving after stop
                _shutdown(sock)
            else:
                self._open_sockets.add(sock)  # stop() shuts these down
            return next(self._connection_ids)

    def _connection_closed(self, sock: socket.socket) -> None:
        with self._lock:
            self._open_sockets.discard(sock)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _next_fault(self, model: str | None) -> Fault | None:
        if model is None:
            return None
        with self._lock:
            queue = self._faults.get(model)
            if queue:
                return queue.popleft()
            policy = self._fault_rates.get(model)
            if policy is None:
                return None
            rate, faults, chance = policy
            return chance.choice(faults) if chance.random() < rate else None

    def _prompt_seen(self, messages: list[Any]) -> bool:
        """Whether these exact messages were answered before; remembers them."""
        key = json.dumps(messages, sort_keys=True, separators=(",", ":"))
        with self._lock:
            seen = key in self._seen_prompts
            self._seen_prompts.add(key)
            return seen

    def _sleep(self, seconds: float) -> bool:
        """Sleep, cut short by stop(); ``True`` when the server is still running."""
        return not self._stopping.wait(seconds)


class _HTTPServer(ThreadingHTTPServer):
    """Threading server tuned for tests: quick bind, deep backlog, quiet on disconnects."""

    daemon_threads = True
    request_queue_size = 128  # a burst of concurrent clients must not hit SYN retries

    def __init__(self, address: tuple[str, int], mock: MockLLMServer) -> None:
        self.mock = mock
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self._wake_reader, self._wake_writer = socket.socketpair()

    def serve_until_woken(self) -> None:
        """Accept connections until :meth:`wake`.

        Unlike ``serve_forever`` (which polls for shutdown every 0.5 s), this
        returns as soon as it is woken, so a server per test costs no teardown wait.
        """
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while True:
                ready = {key.fileobj for key, _ in selector.select()}
                if self._wake_reader in ready:
                    return
                self.handle_request()  # the listening socket is readable: accepts without blocking

    def wake(self) -> None:
        """Make :meth:`serve_until_woken` return."""
        self._wake_writer.send(b"x")

    def server_close(self) -> None:
        super().server_close()
        self._wake_reader.close()
        self._wake_writer.close()

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the FQDN, which can stall on a bad resolver.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # the client went away: normal for timeouts and dropped connections
        super().handle_error(request, client_address)


class _ClientGone(Exception):
    """Raised to abandon a request whose connection must close without an answer."""


class _Handler(BaseHTTPRequestHandler):
    """One TCP connection; handles its keep-alive requests in turn."""

    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "otel-llm-mock/1"
    sys_version = ""
    wbufsize = -1  # buffer so headers and body leave in one segment; flushed per response
    disable_nagle_algorithm = True

    connection_id: int
    _response_started: bool

    def setup(self) -> None:
        super().setup()
        self.connection_id = self.server.mock._connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.mock._connection_closed(self.connection)

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s - %s", self.address_string(), format % args)

    def do_POST(self) -> None:
        self._dispatch()

    do_GET = do_PUT = do_PATCH = do_DELETE = do_POST

    # -- request flow ------------------------------------------------------

    def _dispatch(self) -> None:
        self._response_started = False
        try:
            self._route()
        except _ClientGone:
            self.close_connection = True
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:
            _log.exception("mock server failed on %s %s", self.command, self.path)
            self.close_connection = True
            if not self._response_started:
                self._send_json(500, responses.error_body("Mock server internal error.", "server_error"))

    def _route(self) -> None:
        raw = self._read_body()
        split = urlsplit(self.path)
        path = split.path
        match = next(
            ((m, shape, endpoint) for pattern, shape, endpoint in _ROUTES if (m := pattern.fullmatch(path))),
            None,
        )
        if match is None:
            if path.startswith("/openai/"):
                self._send_json(404, responses.azure_not_found_body())
            else:
                self._send_json(
                    404,
                    responses.error_body(
                        f"Unknown path {path}: the mock serves /v1/chat/completions, /v1/embeddings and "
                        "/openai/deployments/{deployment}/chat/completions|embeddings.",
                        "invalid_request_error",
                        "unknown_url",
                    ),
                )
            return
        route, shape, endpoint = match
        if self.command != "POST":
            self._send_json(
                405,
                responses.error_body(
                    f"Method {self.command} not allowed on {path}.", "invalid_request_error", "method_not_allowed"
                ),
            )
            return

        body = _parse_object(raw)
        model: str | None
        if shape == "azure":
            model = unquote(route.group(1))
        else:
            value = body.get("model") if body is not None else None
            model = value if isinstance(value, str) else None
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        self.server.mock._record(
            RecordedRequest(
                method=self.command,
                path=path,
                query=query,
                headers=headers,
                body=body,
                model=model,
                shape=shape,
                endpoint=endpoint,
                connection=self.connection_id,
            )
        )

        if not _has_credentials(headers):
            self._send_json(
                401,
                responses.error_body(
                    "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' "
                    "(or 'api-key: <key>' for the Azure shape).",
                    "invalid_request_error",
                    "invalid_api_key",
                ),
            )
            return
        if shape == "azure" and not query.get("api-version"):
            self._send_json(404, responses.azure_not_found_body())
            return
        if body is None:
            self._send_json(
                400,
                responses.error_body(
                    "We could not parse the JSON body of your request: it must be a JSON object.",
                    "invalid_request_error",
                ),
            )
            return
        if model is None:
            self._bad_request("you must provide a model parameter", "model")
            return

        fault = self.server.mock._next_fault(model)
        streaming = endpoint == "chat.completions" and body.get("stream") is True
        if fault is not None and self._apply_fault(fault, streaming):
            return
        if endpoint == "chat.completions":
            cut = fault if fault is not None and fault.kind == "cut_stream" else None
            self._serve_chat(body, model, cut=cut)
        else:
            self._serve_embeddings(body, model)

    def _apply_fault(self, fault: Fault, streaming: bool) -> bool:
        """Act out ``fault``; ``True`` when it produced the whole response."""
        if fault.kind == "status":
            headers: dict[str, str] = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
            if fault.retry_after_ms is not None:
                headers["retry-after-ms"] = f"{fault.retry_after_ms:g}"
            self._send_json(fault.status_code or 500, responses.fault_error_body(fault), headers)
            return True
        if fault.kind == "delay":
            if not self.server.mock._sleep(fault.seconds):
                raise _ClientGone  # stopped while sleeping
            return False
        if fault.kind == "drop" or (fault.kind == "cut_stream" and not streaming):
            raise _ClientGone
        if fault.kind == "malformed":
            if streaming:
                self._send_stream([_MALFORMED_EVENT], complete=True)
            else:
                self._send_json(200, _MALFORMED_JSON)
            return True
        return False  # cut_stream on a stream: served, then cut

    def _serve_chat(self, body: dict[str, Any], model: str, *, cut: Fault | None) -> None:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            self._bad_request("'messages' must be a non-empty array.", "messages")
            return
        n = body.get("n")
        n = 1 if n is None else n
        if not _positive_int(n) or n > _MAX_N:
            self._bad_request(f"'n' must be an integer 1-{_MAX_N}.", "n")
            return
        limit_param = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
        limit = body.get(limit_param)
        if limit is not None and not _positive_int(limit):
            self._bad_request(f"'{limit_param}' must be an integer >= 1.", limit_param)
            return
        words = tokens.reply_words(messages, self.server.mock.reply_words)
        finish_reason = "stop"
        if limit is not None and limit < len(words):
            words, finish_reason = words[:limit], "length"
        prompt = tokens.prompt_tokens(messages)
        reply = responses.ChatReply(
            model=model,
            words=words,
            finish_reason=finish_reason,
            n=n,
            prompt_tokens=prompt,
            cached_tokens=tokens.cached_tokens(prompt, seen_before=self.server.mock._prompt_seen(messages)),
        )
        if body.get("stream") is not True:
            self._send_json(200, responses.chat_completion_body(reply))
            return
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        events = [responses.sse_event(e) for e in responses.chat_stream_events(reply, include_usage=include_usage)]
        if cut is None:
            self._send_stream(events, complete=True)
        else:
            content_chunks = len(words) * n
            self._send_stream(events[: n + min(cut.after_chunks, content_chunks)], complete=False, clean=cut.clean)

    def _serve_embeddings(self, body: dict[str, Any], model: str) -> None:
        texts = _embedding_texts(body.get("input"))
        if texts is None:
            self._bad_request("'input' must be a string, an array of strings, or an array of token arrays.", "input")
            return
        dimensions = body.get("dimensions")
        dimensions = self.server.mock.embedding_dimensions if dimensions is None else dimensions
        if not _positive_int(dimensions) or dimensions > _MAX_DIMENSIONS:
            self._bad_request(f"'dimensions' must be an integer 1-{_MAX_DIMENSIONS}.", "dimensions")
            return
        encoding_format = body.get("encoding_format") or "float"
        if encoding_format not in ("float", "base64"):
            self._bad_request("'encoding_format' must be 'float' or 'base64'.", "encoding_format")
            return
        self._send_json(
            200,
            responses.embeddings_body(
                model=model,
                texts=texts,
                dimensions=dimensions,
                encoding_format=encoding_format,
                prompt_tokens=sum(tokens.count_words(t) for t in texts),
            ),
        )

    # -- wire helpers ------------------------------------------------------

    def _read_body(self) -> bytes:
        """The whole request body (Content-Length or chunked); always drained for keep-alive."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size_line = self.rfile.readline(65537)
                if not size_line:
                    raise _ClientGone
                try:
                    size = int(size_line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise _ClientGone from None  # unparseable framing: nothing sane to answer
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self._read_exactly(size))
                self.rfile.readline(65537)  # CRLF after the chunk
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            size = int(length)
        except ValueError:
            size = -1
        if size < 0:
            self.close_connection = True  # cannot find the next request's start
            return b""
        return self._read_exactly(size)

    def _read_exactly(self, size: int) -> bytes:
        data = self.rfile.read(size)
        if len(data) < size:
            raise _ClientGone
        return data

    def _bad_request(self, message: str, param: str | None) -> None:
        self._send_json(400, responses.error_body(message, "invalid_request_error", None, param))

    def _send_json(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else responses.json_bytes(body)
        self._response_started = True
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", responses.new_id("req_"))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _send_stream(self, events: list[bytes], *, complete: bool, clean: bool = False) -> None:
        """Send SSE ``events`` chunked, one flush each, as providers stream.

        ``complete`` ends with ``[DONE]`` and the terminating zero-length chunk in
        one write (so the client sees the body end with the last event and can
        reuse the connection); otherwise the body ends right after the events:
        properly when ``clean``, else by closing the connection mid-body.
        """
        chunked = self.request_version != "HTTP/1.0"
        self._response_started = True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("x-request-id", responses.new_id("req_"))
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()

        def frame(data: bytes) -> bytes:
            return b"%x\r\n%s\r\n" % (len(data), data) if chunked else data

        for event in events:
            self.wfile.write(frame(event))
            self.wfile.flush()
        if complete:
            self.wfile.write(frame(_DONE) + (b"0\r\n\r\n" if chunked else b""))
        elif clean and chunked:
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.flush()
            raise _ClientGone


def _shutdown(sock: socket.socket) -> None:
    """End a connection from any thread (closing it there could race fd reuse)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by the peer


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _parse_object(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except ValueError:  # includes UnicodeDecodeError
        return None
    return value if isinstance(value, dict) else None


def _has_credentials(headers: Mapping[str, str]) -> bool:
    bearer = headers.get("authorization", "")
    scheme, _, key = bearer.partition(" ")
    return bool(headers.get("api-key", "").strip()) or (scheme.lower() == "bearer" and bool(key.strip()))


def _embedding_texts(value: Any) -> list[str] | None:
    """The texts of an embeddings ``input``; a token array becomes the text of its numbers."""

    def is_tokens(item: Any) -> bool:
        return (
            isinstance(item, list) and bool(item) and all(isinstance(t, int) and not isinstance(t, bool) for t in item)
        )

    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        return None
    if is_tokens(value):
        return [" ".join(map(str, value))]
    if all(isinstance(item, str) for item in value):
        return list(value)
    if all(is_tokens(item) for item in value):
        return [" ".join(map(str, item)) for item in value]
    return None
