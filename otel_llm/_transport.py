"""The HTTP clients under the ``openai`` SDK clients we build.

Three things happen here, once per client: the httpx2 instrumentation, applied
to our clients only (never globally); reads bounded by a deadline of ours; and,
for sync clients, a transport that reads a response body to its end before
closing it.

httpx bounds each network operation (connect, write, each read) by the same
timeout for the whole request, so it cannot say "one attempt may take this
long, but once its stream is flowing each chunk may take that long". The
attempt (with ``LLM_ATTEMPT_TIMEOUT_S``) and the stream wrappers (with
``LLM_STREAM_IDLE_TIMEOUT_S``) say it through :data:`read_deadline`: while it
is set, every wait on the connection ends by then at the latest (an httpx
timeout), whatever the request's own timeout. The connection pools' network
backends are wrapped for it (in ``_bounded_reads``).

The ``openai`` SDK's sync ``Stream`` stops at ``data: [DONE]`` and closes the
response before the HTTP body has ended, which throws the connection away:
every streamed call would
open a new TCP (and TLS) connection. Once the answer is complete (the stream
wrapper calls :func:`finish_body_on_close`), reading the few bytes left lets
the connection go back to the pool. A stream closed early by its caller is not
read on: that would wait for the rest of the generation. (The async SDK
already drains after ``[DONE]`` itself.)
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

import httpx2
import openai
from opentelemetry import metrics, trace

from ._guard import GuardedMeterProvider, GuardedTracerProvider

__all__ = ["async_http_client", "finish_body_on_close", "read_deadline", "sync_http_client"]

read_deadline: ContextVar[float | None] = ContextVar("otel_llm_read_deadline", default=None)
"""``time.monotonic()`` by which the current wait on a connection must end, if any."""

# After [DONE] only the end of the chunked body is left; more than this means
# the server is still sending, and closing the connection is cheaper.
_DRAIN_LIMIT_BYTES = 64 * 1024
# httpx wraps the transport's stream on the way up, so the response carries
# our body object in its extensions for finish_body_on_close() to find.
_BODY_EXTENSION = "otel_llm.body"


# Both clients are built as the SDK builds its own, and their transports
# changed afterwards: a client given a transport would ignore the proxies of
# the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY), which httpx
# mounts as transports of their own, beside the default one. The httpx2
# instrumentation and the bounded reads (httpcore2) are imported with the
# first client built, not with otel_llm: they are slow to import.


def sync_http_client(*, http_spans: bool) -> httpx2.Client:
    client = openai.DefaultHttpxClient()
    client._transport = _sync_transport(client._transport)
    client._mounts = {
        pattern: None if transport is None else _sync_transport(transport)  # None: NO_PROXY, the default
        for pattern, transport in client._mounts.items()
    }
    _http_spans(client, http_spans)
    return client


def _sync_transport(transport: httpx2.BaseTransport) -> httpx2.BaseTransport:
    from ._bounded_reads import bound_reads

    bound_reads(transport)
    return _DrainOnCloseTransport(transport)


def async_http_client(*, http_spans: bool) -> httpx2.AsyncClient:
    from ._bounded_reads import bound_reads

    client = openai.DefaultAsyncHttpxClient()
    for transport in (client._transport, *client._mounts.values()):
        bound_reads(transport)
    _http_spans(client, http_spans)
    return client


def _http_spans(client: httpx2.Client | httpx2.AsyncClient, wanted: bool) -> None:
    """The HTTP span under each attempt (``LLM_HTTP_SPANS``), unless every client of the process makes one
    already (``opentelemetry-instrument``); in both, the keys in the request headers are never captured."""
    instrumentation = sys.modules.get("opentelemetry.instrumentation.httpx")  # not imported: not applied
    if instrumentation is not None and instrumentation.HTTPX2ClientInstrumentor().is_instrumented_by_opentelemetry:
        _defer_header_normalisation()
    elif wanted:
        _instrument(client)


def _instrument(client: httpx2.Client | httpx2.AsyncClient) -> None:
    """Our clients' HTTP spans; a telemetry pipeline that raises cannot fail the request."""
    from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor

    _defer_header_normalisation()
    HTTPX2ClientInstrumentor.instrument_client(
        client,
        tracer_provider=GuardedTracerProvider(trace.get_tracer_provider()),
        meter_provider=GuardedMeterProvider(metrics.get_meter_provider()),
    )


# -- the httpx2 instrumentation's header normalisation, deferred ---------------------
#
# For each request, opentelemetry-instrumentation-httpx normalises every
# request and response header (``_normalize_headers``, which calls
# ``Headers.get_list`` for each name, and each call scans all the headers),
# then drops the result unless OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_*
# names headers to capture. For a chat call (17 request, 11 response headers)
# that is 0.67 M of the 1.40 M instructions the instrumentation adds to a
# request (bench/bench_http_spans.py), and no option of the library turns it
# off. Its normaliser is wrapped to hand back the same mapping, made the first
# time something reads it. This reaches an internal name of the library:
# tests/test_http_spans.py fails if the hook stops reaching it.
#
# The same place keeps the keys out of telemetry: headers are captured by
# name patterns (".*" captures all), and redacted only when also named in
# OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS. The headers that
# carry a key are redacted here whatever the patterns say (for every client
# the instrumentation watches, once the hook is in place: a key is never
# telemetry).

_KEY_HEADERS = ("authorization", "api-key", "proxy-authorization")  # as normalised: lower case
_REDACTED = "[REDACTED]"  # what the library writes for a sanitised header


def _defer_header_normalisation() -> None:
    import opentelemetry.instrumentation.httpx as _httpx_instrumentation

    normalise = getattr(_httpx_instrumentation, "_normalize_headers", None)
    if callable(normalise) and not isinstance(normalise, _DeferredNormaliser):
        # A Mapping where it says dict: what the one reader of the result,
        # opentelemetry.util.http.get_custom_header_attributes, takes.
        _httpx_instrumentation._normalize_headers = _DeferredNormaliser(normalise)  # type: ignore[assignment]


class _DeferredNormaliser:
    def __init__(self, normalise: Callable[[Any, Any], Mapping[str, list[str]]]) -> None:
        self._normalise = normalise

    def __call__(self, headers: Any, module: Any) -> Mapping[str, list[str]]:
        return _NormalisedWhenRead(self._normalise, headers, module)


class _NormalisedWhenRead(Mapping[str, list[str]]):
    """What the normaliser returns for ``headers``, made when first read, keys redacted."""

    __slots__ = ("_headers", "_module", "_normalise", "_normalised")

    def __init__(self, normalise: Callable[[Any, Any], Mapping[str, list[str]]], headers: Any, module: Any) -> None:
        self._normalise = normalise
        self._headers = headers
        self._module = module
        self._normalised: Mapping[str, list[str]] | None = None

    def _made(self) -> Mapping[str, list[str]]:
        if self._normalised is None:
            normalised = dict(self._normalise(self._headers, self._module))
            for name in _KEY_HEADERS:
                if name in normalised:
                    normalised[name] = [_REDACTED]
            self._normalised = normalised
        return self._normalised

    def __bool__(self) -> bool:
        # Asked first. The normaliser makes an entry per header name, so this
        # is empty exactly when the headers are, which says it without them.
        return bool(self._headers)

    def __getitem__(self, name: str) -> list[str]:
        return self._made()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._made())

    def __len__(self) -> int:
        return len(self._made())


def finish_body_on_close(response: httpx2.Response) -> None:
    """The answer is complete: let closing ``response`` read its last bytes, to reuse the connection."""
    body = response.extensions.get(_BODY_EXTENSION)
    if body is not None:
        body.finish_on_close = True


class _DrainOnCloseTransport(httpx2.BaseTransport):
    def __init__(self, transport: httpx2.BaseTransport) -> None:
        self._transport = transport

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        response = self._transport.handle_request(request)
        assert isinstance(response.stream, httpx2.SyncByteStream)
        response.stream = response.extensions[_BODY_EXTENSION] = _DrainOnClose(response.stream)
        return response

    def close(self) -> None:
        self._transport.close()


class _DrainOnClose(httpx2.SyncByteStream):
    """A response body that, once marked complete, reads what is left of it when closed."""

    def __init__(self, stream: httpx2.SyncByteStream) -> None:
        self._stream = stream
        self._chunks: Iterator[bytes] | None = None
        self.finish_on_close = False

    def __iter__(self) -> Iterator[bytes]:
        self._chunks = iter(self._stream)
        # A plain loop, not `yield from`: closing this generator must not close
        # the underlying one, which close() still reads from.
        for chunk in self._chunks:  # noqa: UP028
            yield chunk

    def close(self) -> None:
        try:
            if self.finish_on_close and self._chunks is not None:
                left = 0
                for chunk in self._chunks:
                    left += len(chunk)
                    if left > _DRAIN_LIMIT_BYTES:
                        break
        except httpx2.HTTPError:
            pass  # the body was broken anyway: the connection is not reused
        finally:
            self._stream.close()
