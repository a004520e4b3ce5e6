"""The embedded OpenAI-compatible HTTP server (stdlib only).

It speaks real HTTP/1.1 on loopback (keep-alive, chunked streams), or HTTPS
when given a certificate, so that the code under test runs its actual HTTP
stack: connection pools, TLS handshakes, timeouts, retries and the httpx2
instrumentation all behave as against a real provider.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import random
import re
import selectors
import socket
import socketserver
import ssl
import sys
import threading
import time
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
from ._quirks import Quirk
from ._schemas import schema_instance

__all__ = ["Endpoint", "MockLLMServer", "RecordedRequest", "Shape"]

_log = logging.getLogger("otel_llm.testing")
_Server = TypeVar("_Server", bound="MockLLMServer")

Shape = Literal["openai", "azure"]
Endpoint = Literal["chat.completions", "embeddings", "responses", "models", "files", "batches"]


@dataclass(frozen=True, slots=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    """Named groups: ``deployment`` (the model of Azure deployment routes), ``response_id``, ``model_id``."""
    shape: Shape
    endpoint: Endpoint

    @classmethod
    def at(cls, method: str, path: str, shape: Shape, endpoint: Endpoint) -> _Route:
        """The route for ``path`` (a regular expression), with or without a trailing slash."""
        return cls(method, re.compile(f"{path}/?"), shape, endpoint)


_ROUTES = (
    _Route.at("POST", "/v1/chat/completions", "openai", "chat.completions"),
    _Route.at("POST", "/v1/embeddings", "openai", "embeddings"),
    _Route.at("POST", "/v1/responses", "openai", "responses"),
    _Route.at("GET", "/v1/responses/(?P<response_id>[^/]+)", "openai", "responses"),
    _Route.at("GET", "/v1/models", "openai", "models"),
    _Route.at("GET", "/v1/models/(?P<model_id>[^/]+)", "openai", "models"),
    _Route.at("GET", "/v1/files", "openai", "files"),
    _Route.at("GET", "/v1/batches", "openai", "batches"),
    _Route.at("POST", "/openai/deployments/(?P<deployment>[^/]+)/chat/completions", "azure", "chat.completions"),
    _Route.at("POST", "/openai/deployments/(?P<deployment>[^/]+)/embeddings", "azure", "embeddings"),
    # the SDK sends the APIs it has no deployment path for to /openai/..., the deployment as body "model"
    _Route.at("POST", "/openai/responses", "azure", "responses"),
    _Route.at("GET", "/openai/responses/(?P<response_id>[^/]+)", "azure", "responses"),
    _Route.at("GET", "/openai/models", "azure", "models"),
    _Route.at("GET", "/openai/models/(?P<model_id>[^/]+)", "azure", "models"),
    _Route.at("GET", "/openai/files", "azure", "files"),
    _Route.at("GET", "/openai/batches", "azure", "batches"),
)
_SERVED = (
    "POST /v1/chat/completions, /v1/embeddings and /v1/responses; GET /v1/responses/{id}, /v1/models, "
    "/v1/models/{id}, /v1/files and /v1/batches; and the Azure shapes of these: "
    "POST /openai/deployments/{deployment}/chat/completions|embeddings, the others under /openai/ "
    "instead of /v1/"
)
_MAX_N = 128
_MAX_DIMENSIONS = 65536
_MIN_OUTPUT_TOKENS = 16  # OpenAI rejects a smaller max_output_tokens
_POLL_SECONDS = 0.05  # how often a waiting handler looks whether its client left
_LIFECYCLE_EVENTS = 2  # response.created, response.in_progress: what a Responses stream sends before any output
_MALFORMED_JSON = b'{"id":"chatcmpl-malformed","object":"chat.completion","choices":[{"index":0,"message":{"role":'
_MALFORMED_EVENT = b'data: {"id":"chatcmpl-malformed","object":"chat.completion.chunk","choices":[{\n\n'
_MALFORMED_RESPONSE_JSON = b'{"id":"resp_malformed","object":"response","status":"completed","output":[{"type":'
_MALFORMED_RESPONSE_EVENT = (
    b'event: response.created\ndata: {"type":"response.created","sequence_number":0,"response":{"id":\n\n'
)
_DONE = responses.sse_event("[DONE]")
# What a connection's end raises: the client left (timeouts, dropped connections) or broke off TLS.
_CLIENT_GONE_ERRORS = (ConnectionError, TimeoutError, ssl.SSLError)

_OutputFormat = tuple[Literal["text", "json_object", "json_schema"], Mapping[str, Any] | None]
"""What a reply is: text, a JSON object, or a document of the given JSON schema."""


@dataclass(frozen=True, slots=True)
class _StoredResponse:
    body: dict[str, Any]
    """The final ``response`` object, as ``GET /v1/responses/{id}`` answers it."""
    conversation: list[Any]
    """Its input messages and reply (not its instructions): what a ``previous_response_id`` continues."""


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
    """The parsed JSON body, or ``None`` when it was missing (as for ``GET``) or not a JSON object."""
    model: str | None
    """The deployment in the URL of Azure deployment routes, else the body's ``model``;
    ``None`` for ``GET`` routes (retrieving a response, listings)."""
    shape: Shape
    endpoint: Endpoint
    connection: int
    """Id of the TCP connection it came on: equal ids mean a reused connection."""


class MockLLMServer:
    """An OpenAI-compatible server on loopback for tests and offline demos.

    Serves, in the OpenAI URL shape (``/v1/...``, ``Authorization: Bearer``) and
    the Azure OpenAI shape (``/openai/...?api-version=``, ``api-key``):

    - chat completions (plain and streamed; Azure: ``/openai/deployments/{deployment}/chat/completions``);
    - embeddings (Azure: ``/openai/deployments/{deployment}/embeddings``);
    - the Responses API: ``POST /v1/responses`` (plain and streamed; Azure:
      ``/openai/responses`` with the deployment as body ``model``, as the SDK
      sends it) and ``GET /v1/responses/{id}`` for stored responses, which a
      later request can continue with ``previous_response_id``;
    - for SDK resources that do not generate: ``GET /v1/models`` (the
      :data:`~otel_llm.testing._responses.LISTED_MODELS`, then every model
      answered for so far), ``GET /v1/models/{id}`` (one of those), and empty
      pages for ``GET /v1/files`` and ``GET /v1/batches``.

    Replies and token usage are deterministic (see :mod:`otel_llm.testing._tokens`),
    structured outputs (JSON schema or JSON object) are valid documents (see
    :mod:`otel_llm.testing._schemas`), and every successful answer carries OpenAI's
    ``x-ratelimit-*`` headers (counted per model).

    Per model, scripted :class:`Fault` s (one request each, :meth:`add_faults`)
    make chat, embeddings and Responses requests fail as providers do: error
    statuses, delays, a server that never answers, dropped connections,
    unparseable bodies, streams cut or stalled midway. :class:`Quirk` s (until
    cleared, :meth:`set_quirks`) give the answers the shapes other providers
    send: Azure's prompt filter chunk and output content filter, usage in an
    empty choice, no finish reason, no model.

    >>> with MockLLMServer() as server:
    ...     client = openai.OpenAI(base_url=server.base_url, api_key="test")

    Replies are ``reply_words`` words long (``mock reply`` then the last user
    message's words, cycled); ``max_tokens`` / ``max_completion_tokens`` /
    ``max_output_tokens`` cut them (``finish_reason="length"``, or a Responses
    ``status="incomplete"``). Embeddings are ``embedding_dimensions`` long unless
    the request asks for ``dimensions``. ``max_output_tokens`` must be at least
    16, as OpenAI requires. The last ``max_stored_responses`` responses are
    stored (unless sent with ``store: false``).

    Given ``tls``, a server-side :class:`ssl.SSLContext` holding its certificate
    (``context.load_cert_chain(certfile, keyfile)``), it serves HTTPS: :attr:`url`
    starts with ``https://``, and clients must trust the certificate's issuer.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        reply_words: int = 16,
        embedding_dimensions: int = 8,
        max_stored_responses: int = 1000,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if not _positive_int(reply_words):
            raise ValueError(f"reply_words must be an integer >= 1, got {reply_words!r}")
        if not _positive_int(embedding_dimensions) or embedding_dimensions > _MAX_DIMENSIONS:
            raise ValueError(
                f"embedding_dimensions must be an integer 1-{_MAX_DIMENSIONS}, got {embedding_dimensions!r}"
            )
        if not _positive_int(max_stored_responses):
            raise ValueError(f"max_stored_responses must be an integer >= 1, got {max_stored_responses!r}")
        if tls is not None and (not isinstance(tls, ssl.SSLContext) or tls.protocol is ssl.PROTOCOL_TLS_CLIENT):
            raise TypeError(f"tls must be a server-side ssl.SSLContext (ssl.PROTOCOL_TLS_SERVER), got {tls!r}")
        self.host = host
        self.reply_words = reply_words
        self.embedding_dimensions = embedding_dimensions
        self.max_stored_responses = max_stored_responses
        self.tls = tls
        self._requested_port = port
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._faults: dict[str, deque[Fault]] = {}
        self._fault_rates: dict[str, tuple[float, tuple[Fault, ...], random.Random]] = {}
        self._quirks: dict[str, frozenset[Quirk]] = {}
        self._seen_prompts: set[str] = set()
        self._stored: dict[str, _StoredResponse] = {}  # oldest first
        # model -> (requests, tokens) in its rate-limit window; also the models answered for, in order
        self._rate_windows: dict[str, tuple[int, int]] = {}
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
            self._stopping.set()  # wakes handlers waiting in a fault (delay, hang, stall_stream)
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
        """``http://host:port`` (``https://`` with ``tls``), the server root."""
        host, port = self._bound()
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

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
        """TCP connections accepted since start (or the last :meth:`reset`); with ``tls``, one TLS handshake each."""
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

    def set_quirks(self, model: str, *quirks: Quirk) -> None:
        """Shape every later answer for ``model`` (OpenAI body model or Azure deployment) by ``quirks``.

        Unlike faults they last, until the next call for that model (``set_quirks(model)``
        clears them) or :meth:`reset`. Safe while serving.
        """
        if not isinstance(model, str) or isinstance(model, Quirk):
            raise TypeError(f"set_quirks takes the model first, then the quirks; got model {model!r}")
        for quirk in quirks:
            if not isinstance(quirk, Quirk):
                raise TypeError(f"expected Quirk, got {type(quirk).__name__} {quirk!r}")
        with self._lock:
            if quirks:
                self._quirks[model] = frozenset(quirks)
            else:
                self._quirks.pop(model, None)

    def reset(self) -> None:
        """Forget recorded requests, queued faults, quirks, the connection count, cached prompts,
        stored responses, the models answered for and the rate-limit counts."""
        with self._lock:
            self._requests.clear()
            self._faults.clear()
            self._fault_rates.clear()
            self._quirks.clear()
            self._seen_prompts.clear()
            self._stored.clear()
            self._rate_windows.clear()
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

    def _quirks_of(self, model: str) -> frozenset[Quirk]:
        with self._lock:
            return self._quirks.get(model, frozenset())

    def _prompt_seen(self, messages: list[Any]) -> bool:
        """Whether these exact messages were answered before; remembers them."""
        key = json.dumps(messages, sort_keys=True, separators=(",", ":"))
        with self._lock:
            seen = key in self._seen_prompts
            self._seen_prompts.add(key)
            return seen

    def _answered(self, model: str | None, tokens_used: int) -> dict[str, str]:
        """Count a successful answer for ``model`` in its rate-limit window; its ``x-ratelimit-*`` headers.

        Answers without a model (retrieval, listings) count nothing and show the full limits.
        A window holds ``RATE_LIMIT_REQUESTS`` answers, then starts afresh.
        """
        if model is None:
            return responses.rate_limit_headers(0, 0)
        with self._lock:
            requests_used, window_tokens = self._rate_windows.get(model, (0, 0))
            if requests_used >= responses.RATE_LIMIT_REQUESTS:
                requests_used, window_tokens = 0, 0
            used = (requests_used + 1, window_tokens + tokens_used)
            self._rate_windows[model] = used
        return responses.rate_limit_headers(*used)

    def _listed_models(self) -> list[str]:
        """What ``GET /v1/models`` lists: the fixed models, then those answered for, in order."""
        with self._lock:
            answered = list(self._rate_windows)
        return list(dict.fromkeys([*responses.LISTED_MODELS, *answered]))

    def _store_response(self, response_id: str, stored: _StoredResponse) -> None:
        """Remember a response, forgetting the oldest beyond ``max_stored_responses``."""
        with self._lock:
            self._stored[response_id] = stored
            while len(self._stored) > self.max_stored_responses:
                del self._stored[next(iter(self._stored))]

    def _stored_response(self, response_id: str) -> _StoredResponse | None:
        with self._lock:
            return self._stored.get(response_id)

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

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.mock.tls is not None:
            # The handshake is left to the connection's own thread (see _Handler.handle):
            # a slow or broken client must not hold up accepting the others.
            sock = self.mock.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the FQDN, which can stall on a bad resolver.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], _CLIENT_GONE_ERRORS):
            return  # the client went away: normal for timeouts and dropped connections
        super().handle_error(request, client_address)


class _ClientGone(Exception):
    """Raised to abandon a request whose connection must close without an answer."""


class _RequestError(Exception):
    """Raised to answer with OpenAI's error body: 400 unless told, naming the offending ``param``."""

    def __init__(self, message: str, param: str | None, *, status: int = 400, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.status = status
        self.code = code


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
            if isinstance(self.connection, ssl.SSLSocket):
                self.connection.do_handshake()
            super().handle()
        except _CLIENT_GONE_ERRORS:  # also a client that does not trust the certificate
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
        except _RequestError as error:
            self._send_json(
                error.status, responses.error_body(str(error), "invalid_request_error", error.code, error.param)
            )
        except _ClientGone:
            self.close_connection = True
        except _CLIENT_GONE_ERRORS:
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
        matches = [(route, m) for route in _ROUTES if (m := route.pattern.fullmatch(path))]
        if not matches:
            if path.startswith("/openai/"):
                self._send_json(404, responses.azure_not_found_body())
            else:
                self._send_json(
                    404,
                    responses.error_body(
                        f"Unknown path {path}: the mock serves {_SERVED}.", "invalid_request_error", "unknown_url"
                    ),
                )
            return
        found = next(((route, m) for route, m in matches if route.method == self.command), None)
        if found is None:
            self._send_json(
                405,
                responses.error_body(
                    f"Method {self.command} not allowed on {path}.", "invalid_request_error", "method_not_allowed"
                ),
            )
            return
        route, match = found
        params = {name: unquote(value) for name, value in match.groupdict().items()}

        body = _parse_object(raw)
        model: str | None = params.get("deployment")
        if model is None and route.method == "POST":
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
                shape=route.shape,
                endpoint=route.endpoint,
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
        if route.shape == "azure" and not query.get("api-version"):
            self._send_json(404, responses.azure_not_found_body())
            return
        if route.method == "GET":
            self._serve_get(route.endpoint, params, query)
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
            raise _RequestError("you must provide a model parameter", "model")

        fault = self.server.mock._next_fault(model)
        streaming = route.endpoint != "embeddings" and body.get("stream") is True
        if fault is not None and self._apply_fault(fault, route.endpoint, streaming):
            return
        cut = fault if fault is not None and fault.kind == "cut_stream" else None
        stall = fault if fault is not None and fault.kind == "stall_stream" else None
        quirks = self.server.mock._quirks_of(model)
        if route.endpoint == "chat.completions":
            self._serve_chat(body, model, quirks, cut=cut, stall=stall)
        elif route.endpoint == "responses":
            self._serve_responses(body, model, quirks, cut=cut, stall=stall)
        else:
            self._serve_embeddings(body, model, quirks)

    def _apply_fault(self, fault: Fault, endpoint: Endpoint, streaming: bool) -> bool:
        """Act out ``fault``, or the part of it that comes before any answer; ``True`` when it
        produced the whole response (or none ever comes)."""
        if fault.kind == "status":
            headers: dict[str, str] = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
            if fault.retry_after_ms is not None:
                headers["retry-after-ms"] = f"{fault.retry_after_ms:g}"
            self._send_json(fault.status_code or 500, responses.fault_error_body(fault), headers)
            return True
        if fault.kind == "hang":
            self._wait(math.inf)  # returns once the client left or the server stopped
            raise _ClientGone
        if fault.kind == "delay" or (fault.kind == "stall_stream" and not streaming):
            if not self._wait(fault.seconds):
                raise _ClientGone
            return False
        if fault.kind == "drop" or (fault.kind == "cut_stream" and not streaming):
            raise _ClientGone
        if fault.kind == "malformed":
            is_response = endpoint == "responses"
            if streaming:
                self._send_stream([_MALFORMED_RESPONSE_EVENT] if is_response else [_MALFORMED_EVENT, _DONE])
            else:
                self._send_json(200, _MALFORMED_RESPONSE_JSON if is_response else _MALFORMED_JSON)
            return True
        return False  # cut_stream or stall_stream on a stream: served, then cut or stalled

    def _serve_chat(
        self, body: dict[str, Any], model: str, quirks: frozenset[Quirk], *, cut: Fault | None, stall: Fault | None
    ) -> None:
        mock = self.server.mock
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _RequestError("'messages' must be a non-empty array.", "messages")
        n = body.get("n")
        n = 1 if n is None else n
        if not _positive_int(n) or n > _MAX_N:
            raise _RequestError(f"'n' must be an integer 1-{_MAX_N}.", "n")
        limit_param = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
        limit = body.get(limit_param)
        if limit is not None and not _positive_int(limit):
            raise _RequestError(f"'{limit_param}' must be an integer >= 1.", limit_param)
        reasoning = _reasoning_tokens(body.get("reasoning_effort"), "reasoning_effort")
        output_format = _output_format(body.get("response_format"), "response_format", nested=True)
        if output_format[0] == "json_object" and not _mention_json(messages):
            raise _RequestError(
                "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
                "messages",
            )
        reply_tokens, reasoning, cut_short = tokens.within_limit(
            tokens.split_tokens(_reply_text(messages, mock.reply_words, output_format, "response_format")),
            reasoning,
            limit,
        )
        prompt = tokens.prompt_tokens(messages)
        reply = responses.ChatReply(
            model=model,
            tokens=reply_tokens,
            finish_reason="length" if cut_short else "stop",
            n=n,
            prompt_tokens=prompt,
            cached_tokens=tokens.cached_tokens(prompt, seen_before=mock._prompt_seen(messages)),
            reasoning_tokens=reasoning,
            quirks=quirks,
        )
        headers = mock._answered(model, reply.usage["total_tokens"])
        if body.get("stream") is not True:
            self._send_json(200, responses.chat_completion_body(reply), headers)
            return
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        events = [responses.sse_event(e) for e in responses.chat_stream_events(reply, include_usage=include_usage)]
        if cut is None:
            self._send_stream([*events, _DONE], headers=headers, stall=stall)
        else:
            lead = n + int(Quirk.PROMPT_FILTER_CHUNK in quirks)  # the role chunks, after Azure's prompt filter chunk
            sent = lead + min(cut.after_chunks, len(reply.tokens) * n)
            self._send_stream(events[:sent], complete=False, clean=cut.clean, headers=headers)

    def _serve_responses(
        self, body: dict[str, Any], model: str, quirks: frozenset[Quirk], *, cut: Fault | None, stall: Fault | None
    ) -> None:
        mock = self.server.mock
        items = body.get("input")
        if not isinstance(items, str) and not (isinstance(items, list) and all(isinstance(i, dict) for i in items)):
            raise _RequestError("'input' must be a string or an array of input items.", "input")
        instructions = body.get("instructions")
        if instructions is not None and not isinstance(instructions, str):
            raise _RequestError("'instructions' must be a string.", "instructions")
        limit = body.get("max_output_tokens")
        if limit is not None and not (_positive_int(limit) and limit >= _MIN_OUTPUT_TOKENS):
            raise _RequestError(
                f"Invalid 'max_output_tokens': expected an integer >= {_MIN_OUTPUT_TOKENS}, but got {limit!r} instead.",
                "max_output_tokens",
            )
        reasoning_options = _options(body, "reasoning")
        reasoning = _reasoning_tokens(reasoning_options.get("effort"), "reasoning.effort")
        output_format = _output_format(_options(body, "text").get("format"), "text.format", nested=False)
        conversation = [*self._continued(body.get("previous_response_id")), *tokens.input_messages(items)]
        messages = [{"role": "developer", "content": instructions}] if instructions is not None else []
        messages += conversation
        if output_format[0] == "json_object" and not _mention_json(messages):
            raise _RequestError(
                "Response input messages must contain the word 'json' in some form to use 'text.format' of type "
                "'json_object'.",
                "input",
            )
        reply_tokens, reasoning, cut_short = tokens.within_limit(
            tokens.split_tokens(_reply_text(messages, mock.reply_words, output_format, "text.format")),
            reasoning,
            limit,
        )
        prompt = tokens.prompt_tokens(messages)
        reply = responses.ResponseReply(
            model=model,
            tokens=reply_tokens,
            incomplete=cut_short,
            prompt_tokens=prompt,
            cached_tokens=tokens.cached_tokens(prompt, seen_before=mock._prompt_seen(messages)),
            reasoning_tokens=reasoning,
            settings=responses.response_settings(body),
            quirks=quirks,
        )
        final = responses.response_body(reply)
        if body.get("store") is not False:
            turn = [*conversation, {"role": "assistant", "content": reply.text}]
            mock._store_response(reply.response_id, _StoredResponse(final, turn))
        headers = mock._answered(model, reply.usage["total_tokens"])
        if body.get("stream") is not True:
            self._send_json(200, final, headers)
            return
        events = [responses.sse_event(e, e["type"]) for e in responses.response_stream_events(reply)]
        if cut is None:
            self._send_stream(events, headers=headers, stall=stall)
        else:
            # after_chunks=0: only the lifecycle events; else also the item and part added, then the deltas
            sent = _LIFECYCLE_EVENTS + (2 + min(cut.after_chunks, len(reply.tokens)) if cut.after_chunks else 0)
            self._send_stream(events[:sent], complete=False, clean=cut.clean, headers=headers)

    def _continued(self, previous_id: Any) -> list[Any]:
        """The conversation a ``previous_response_id`` continues; none without one."""
        if previous_id is None:
            return []
        previous = self.server.mock._stored_response(previous_id) if isinstance(previous_id, str) else None
        if previous is None:
            raise _RequestError(
                f"Previous response with id '{previous_id}' not found.",
                "previous_response_id",
                status=404,
                code="previous_response_not_found",
            )
        return previous.conversation

    def _serve_get(self, endpoint: Endpoint, params: Mapping[str, str], query: Mapping[str, str]) -> None:
        """The routes that read rather than generate: a stored response, the models, files and batches."""
        mock = self.server.mock
        body: dict[str, Any]
        if endpoint == "responses":
            if query.get("stream") == "true":
                raise _RequestError("Only background responses can be streamed again; the mock has none.", "stream")
            stored = mock._stored_response(params["response_id"])
            if stored is None:
                raise _RequestError(f"Response with id '{params['response_id']}' not found.", None, status=404)
            body = stored.body
        elif endpoint == "models":
            models = mock._listed_models()
            model_id = params.get("model_id")
            if model_id is not None and model_id not in models:
                raise _RequestError(
                    f"The model '{model_id}' does not exist", "model", status=404, code="model_not_found"
                )
            body = responses.model_list_body(models) if model_id is None else responses.model_body(model_id)
        else:
            body = responses.empty_page_body()
        self._send_json(200, body, mock._answered(None, 0))

    def _serve_embeddings(self, body: dict[str, Any], model: str, quirks: frozenset[Quirk]) -> None:
        texts = _embedding_texts(body.get("input"))
        if texts is None:
            raise _RequestError("'input' must be a string, an array of strings, or an array of token arrays.", "input")
        dimensions = body.get("dimensions")
        dimensions = self.server.mock.embedding_dimensions if dimensions is None else dimensions
        if not _positive_int(dimensions) or dimensions > _MAX_DIMENSIONS:
            raise _RequestError(f"'dimensions' must be an integer 1-{_MAX_DIMENSIONS}.", "dimensions")
        encoding_format = body.get("encoding_format") or "float"
        if encoding_format not in ("float", "base64"):
            raise _RequestError("'encoding_format' must be 'float' or 'base64'.", "encoding_format")
        prompt = sum(tokens.count_words(t) for t in texts)
        self._send_json(
            200,
            responses.embeddings_body(
                model=model,
                texts=texts,
                dimensions=dimensions,
                encoding_format=encoding_format,
                prompt_tokens=prompt,
                quirks=quirks,
            ),
            self.server.mock._answered(model, prompt),
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

    def _send_stream(
        self,
        events: list[bytes],
        *,
        complete: bool = True,
        clean: bool = False,
        headers: Mapping[str, str] | None = None,
        stall: Fault | None = None,
    ) -> None:
        """Send SSE ``events`` chunked, one flush each, as providers stream.

        ``complete`` sends the last event and the terminating zero-length chunk in
        one write (so the client sees the body end with the last event and can
        reuse the connection); otherwise the body ends right after the events:
        properly when ``clean``, else by closing the connection mid-body. A
        ``stall`` (``Fault.stall_stream``) falls silent once the headers and its
        first ``after_events`` events have left (all of them: before the body's end).
        """
        chunked = self.request_version != "HTTP/1.0"
        self._response_started = True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("x-request-id", responses.new_id("req_"))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()

        def frame(data: bytes) -> bytes:
            return b"%x\r\n%s\r\n" % (len(data), data) if chunked else data

        def stall_at(position: int) -> None:
            if stall is not None and min(stall.after_events, len(events)) == position:
                self.wfile.flush()
                if not self._wait(stall.seconds):
                    raise _ClientGone

        for index, event in enumerate(events):
            stall_at(index)
            if index:
                self.wfile.flush()  # the previous event leaves; the last one leaves with the body's end
            self.wfile.write(frame(event))
        stall_at(len(events))
        if chunked and (complete or clean):
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        if not complete and not clean:
            raise _ClientGone

    def _wait(self, seconds: float) -> bool:
        """Wait ``seconds`` (may be ``math.inf``); ``False`` as soon as the client left or the server stopped.

        Looks every 50 ms whether the client closed its end, so that no handler
        sleeps on for a client that gave up long ago.
        """
        deadline = time.monotonic() + seconds
        with selectors.DefaultSelector() as selector:
            selector.register(self.connection, selectors.EVENT_READ)
            while (left := deadline - time.monotonic()) > 0:
                if not self.server.mock._sleep(min(left, _POLL_SECONDS)):
                    return False
                if selector.select(0) and self._client_left():
                    return False
        return True

    def _client_left(self) -> bool:
        """Whether the readable connection is at its end (or reset), without consuming what the client sent."""
        try:
            # On the raw socket: an SSLSocket refuses flags, and any TLS record tells as well that it is open.
            return not socket.socket.recv(self.connection, 1, socket.MSG_PEEK)
        except OSError:
            return True


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


def _options(body: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """An object parameter such as Responses ``reasoning`` or ``text``; empty when not sent."""
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _RequestError(f"'{name}' must be an object.", name)
    return value


def _reasoning_tokens(effort: Any, param: str) -> int:
    """The reasoning tokens for a request's reasoning ``effort`` (see :mod:`._tokens`)."""
    count = tokens.reasoning_tokens(effort)
    if count is None:
        supported = ", ".join(map(repr, tokens.REASONING_TOKENS))
        raise _RequestError(f"Invalid value for '{param}': {effort!r}. Supported values are: {supported}.", param)
    return count


def _output_format(value: Any, param: str, *, nested: bool) -> _OutputFormat:
    """The reply format a chat ``response_format`` (``nested``: the schema under ``json_schema``)
    or a Responses ``text.format`` asks for."""
    if value is None:
        return "text", None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text" or kind == "json_object":
        return kind, None
    spec = value.get("json_schema") if nested and isinstance(value, dict) else value
    if kind == "json_schema" and isinstance(spec, dict):
        if not isinstance(spec.get("name"), str):
            raise _RequestError(f"Missing required parameter: '{param}{'.json_schema' if nested else ''}.name'.", param)
        if isinstance(spec.get("schema"), dict):
            return kind, spec["schema"]
    raise _RequestError(
        f"Invalid '{param}': expected type 'text', 'json_object', or 'json_schema' with a 'schema' object.", param
    )


def _mention_json(messages: Sequence[Any]) -> bool:
    """Whether the messages say "json", as OpenAI's JSON mode requires."""
    return any("json" in tokens.message_text(message).lower() for message in messages)


def _reply_text(messages: Sequence[Any], words: int, output_format: _OutputFormat, param: str) -> str:
    """The whole reply before any cut: text, or JSON for structured outputs (see :mod:`._tokens`)."""
    kind, schema = output_format
    if schema is not None:
        try:
            return json.dumps(schema_instance(schema))
        except ValueError as error:
            raise _RequestError(f"Invalid schema for '{param}': {error}.", param) from None
    text = " ".join(tokens.reply_words(messages, words))
    return json.dumps({"reply": text}) if kind == "json_object" else text


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
