"""One logical call, the way it flows: selection -> attempt -> provider client -> telemetry.

``run_sync`` and ``run_async`` differ only in how they wait; everything else
(choosing the alias, preparing the arguments, the telemetry) is shared here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import openai

from ._cost import cost_function
from ._endpoints import Endpoint
from ._providers import async_client, sync_client
from ._selection import Selection, with_request_model
from ._settings import LLMSettings
from ._streams import AsyncObservedStream, ObservedStream, StreamObserver
from ._telemetry import AttemptTelemetry, CallTelemetry

__all__ = ["CHAT", "EMBEDDINGS", "LogicalCall", "Operation", "run_async", "run_sync"]


@dataclass(frozen=True, slots=True)
class Operation:
    """A kind of call: its ``gen_ai.operation.name`` and the SDK method that makes it."""

    name: str
    method: Callable[[Any], Callable[..., Any]]


CHAT = Operation("chat", lambda client: client.chat.completions.create)
EMBEDDINGS = Operation("embeddings", lambda client: client.embeddings.create)

_servers: dict[int, tuple[str, int | None]] = {}


def _server(client: openai.OpenAI | openai.AsyncOpenAI) -> tuple[str, int | None]:
    """``server.address`` and ``server.port`` of a (cached, long-lived) SDK client."""
    server = _servers.get(id(client))
    if server is None:
        url = client.base_url
        server = _servers[id(client)] = (url.host, url.port or (443 if url.scheme == "https" else 80))
    return server


class LogicalCall:
    """A call as the caller made it: which alias answers it and how it is recorded."""

    __slots__ = ("alias", "attempt", "endpoint", "hide_usage_chunk", "kwargs", "operation", "settings", "telemetry")

    def __init__(
        self,
        operation: Operation,
        selection: Selection,
        settings: LLMSettings,
        model: str | None,
        kwargs: dict[str, Any],
    ) -> None:
        selection = with_request_model(selection, model, settings)
        self.operation = operation
        self.settings = settings
        self.alias = selection.model
        self.endpoint: Endpoint = settings.endpoints[self.alias]
        kwargs.setdefault("timeout", settings.call_timeout_s)
        self.kwargs = kwargs
        self.hide_usage_chunk = kwargs.get("stream") is True and _request_usage(kwargs)
        self.attempt: AttemptTelemetry | None = None
        self.telemetry = CallTelemetry(operation.name, selection)

    def start_attempt(self, client: openai.OpenAI | openai.AsyncOpenAI) -> Callable[..., Any]:
        """Open the attempt span; returns the SDK method to call."""
        self.attempt = AttemptTelemetry(
            self.telemetry,
            self.alias,
            self.endpoint,
            _server(client),
            self.kwargs,
            cost_function(self.alias, self.endpoint, self.settings),
            self.settings.capture_message_content,
        )
        return self.operation.method(client)

    def failed(self, error: BaseException) -> None:
        if self.attempt is not None:
            self.attempt.failed(error)
        self.telemetry.end(self.alias, error)

    def completed(self, response: Any) -> None:
        assert self.attempt is not None
        self.attempt.response(response)
        self.telemetry.end(self.alias, None)

    def observer(self, stream: openai.Stream[Any] | openai.AsyncStream[Any]) -> StreamObserver:
        assert self.attempt is not None
        return StreamObserver(self.attempt, stream.response, self.hide_usage_chunk, self._stream_ended)

    def _stream_ended(self, error: BaseException | None) -> None:
        self.telemetry.end(self.alias, error)


def _request_usage(kwargs: dict[str, Any]) -> bool:
    """Ask a stream for its usage chunk; whether to hide it (the caller did not ask)."""
    options = kwargs.get("stream_options")
    options = options if isinstance(options, dict) else {}
    if options.get("include_usage"):
        return False
    kwargs["stream_options"] = {**options, "include_usage": True}
    return True


def run_sync(call: LogicalCall) -> Any:
    try:
        client = sync_client(call.alias, call.endpoint, call.settings.http_spans)
        create = call.start_attempt(client)
        try:
            result = create(model=call.endpoint.request_model, **call.kwargs)
        finally:
            call.attempt.detach()  # type: ignore[union-attr]
    except BaseException as error:
        call.failed(error)
        raise
    if isinstance(result, openai.Stream):
        return ObservedStream(result, call.observer(result))
    call.completed(result)
    return result


async def run_async(call: LogicalCall) -> Any:
    try:
        client = async_client(call.alias, call.endpoint, call.settings.http_spans)
        create = call.start_attempt(client)
        try:
            result = await create(model=call.endpoint.request_model, **call.kwargs)
        finally:
            call.attempt.detach()  # type: ignore[union-attr]
    except BaseException as error:
        call.failed(error)
        raise
    if isinstance(result, openai.AsyncStream):
        return AsyncObservedStream(result, call.observer(result))
    call.completed(result)
    return result
