"""One logical call, the way it flows: selection -> attempts (retries, fallbacks)
-> provider client -> telemetry.

``run_sync`` and ``run_async`` differ only in how they wait; everything else
(the alias chain, the breakers, the deadline, the telemetry) is shared by
``LogicalCall``. Each model of the chain gets its attempts from a tenacity
``Retrying``; when they are spent on retryable errors the next alias is tried,
all within ``LLM_CALL_TIMEOUT_S``. A stream is retried only before its first
chunk: the attempt reads that chunk before the stream is handed over.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import openai
from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception

from ._breaker import BreakerState, breaker_for
from ._cost import cost_function
from ._endpoints import Endpoint
from ._errors import StreamTruncatedError
from ._providers import Provider, async_client, sync_client
from ._retry import is_retryable, stop_for_call, wait_for_provider
from ._selection import Selection, with_request_model
from ._settings import LLMSettings
from ._streams import AsyncObservedStream, ObservedStream, StreamObserver
from ._telemetry import AttemptTelemetry, CallTelemetry, error_type

__all__ = ["CHAT", "EMBEDDINGS", "LogicalCall", "Operation", "run_async", "run_sync"]


@dataclass(frozen=True, slots=True)
class Operation:
    """A kind of call: its ``gen_ai.operation.name`` and the SDK method that makes it."""

    name: str
    method: Callable[[Any], Callable[..., Any]]


CHAT = Operation("chat", lambda client: client.chat.completions.create)
EMBEDDINGS = Operation("embeddings", lambda client: client.embeddings.create)

_RETRYABLE = retry_if_exception(is_retryable)


@lru_cache(maxsize=64)
def _wait(max_wait: float) -> wait_for_provider:
    return wait_for_provider(max_wait)


class LogicalCall:
    """A call as the caller made it: which aliases may answer it, in what time, and how it is recorded."""

    __slots__ = (
        "_bounded",
        "_caller_timeout",
        "_chain",
        "_deadline",
        "_failures",
        "_index",
        "alias",
        "attempt",
        "endpoint",
        "hide_usage_chunk",
        "kwargs",
        "operation",
        "settings",
        "telemetry",
    )

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
        self._deadline = time.monotonic() + settings.call_timeout_s
        # Each request gets what is left of the deadline, or the caller's own
        # timeout when shorter. An httpx Timeout object is the caller's to manage.
        timeout = kwargs.get("timeout")
        self._caller_timeout: float | None = timeout if isinstance(timeout, (int, float)) else None
        self._bounded = self._caller_timeout is not None or timeout is None
        self.kwargs = kwargs
        self.hide_usage_chunk = kwargs.get("stream") is True and _request_usage(kwargs)
        self._chain = [selection.model, *settings.fallback_chain(selection.model)]
        self._index = -1
        self._failures: list[str] = []
        self.alias = selection.model
        self.endpoint: Endpoint = settings.endpoints[self.alias]
        self.attempt: AttemptTelemetry | None = None
        self.telemetry = CallTelemetry(operation.name, selection)
        self._next_alias(None)

    # -- the chain of aliases ---------------------------------------------------

    def _next_alias(self, reason: str | None) -> bool:
        """Move to the next alias that may be tried (an open breaker is skipped unless it is the last)."""
        previous = self.alias if self._index >= 0 else None
        while self._index + 1 < len(self._chain):
            self._index += 1
            alias = self._chain[self._index]
            if previous is not None and reason is not None:
                self.telemetry.fallback(previous, alias, reason)
            allowed, moved = breaker_for(alias).allow(self.settings.breaker_cooldown_s)
            self._breaker_moved(alias, moved)
            if allowed or self._index == len(self._chain) - 1:
                self.alias = alias
                self.endpoint = self.settings.endpoints[alias]
                return True
            self._failures.append(f"{alias}: skipped, circuit open")
            previous, reason = alias, "circuit_open"
        return False

    def retrying(self) -> dict[str, Any]:
        """The tenacity policy for the current alias."""
        settings = self.settings
        return {
            "stop": stop_for_call(settings.retry_attempts, settings.retry_max_wait_s, self._deadline),
            "wait": _wait(settings.retry_max_wait_s),
            "retry": _RETRYABLE,
            "before_sleep": self._before_sleep,
            "reraise": True,
        }

    def _before_sleep(self, retry_state: RetryCallState) -> None:
        error = retry_state.outcome.exception() if retry_state.outcome is not None else None
        if error is not None:
            self.telemetry.wait(self.alias, retry_state.upcoming_sleep, error)

    def fall_back(self, error: BaseException) -> bool:
        """The current alias failed for good: move down the chain, or end the call (``False``)."""
        if is_retryable(error) and time.monotonic() < self._deadline and self._next_alias(error_type(error)):
            return True
        if self._failures:
            error.add_note(
                f"otel-llm: API {self.telemetry.selection.api_name!r}, every attempt failed: "
                + "; ".join(self._failures)
            )
        self.telemetry.end(self.alias, self._index > 0, error)
        return False

    # -- one attempt --------------------------------------------------------------

    def start_attempt(self, provider: Provider[Any]) -> Callable[..., Any]:
        """Open the attempt span and bound the request by the deadline; returns the SDK method to call."""
        if self._bounded:
            remaining = max(self._deadline - time.monotonic(), 0.001)
            caller = self._caller_timeout
            self.kwargs["timeout"] = remaining if caller is None else min(caller, remaining)
        self.attempt = AttemptTelemetry(
            self.telemetry,
            self.alias,
            self.endpoint,
            (provider.address, provider.port),
            self.kwargs,
            cost_function(self.alias, self.endpoint, self.settings),
            self.settings.capture_message_content,
        )
        return self.operation.method(provider.client)

    def attempt_failed(self, error: BaseException) -> None:
        assert self.attempt is not None
        self._failures.append(f"#{self.telemetry.attempts} {self.alias}: {error_type(error)}")
        self.attempt.failed(error)
        self._breaker_report(error)

    def completed(self, response: Any) -> Any:
        assert self.attempt is not None
        self._breaker_report(None)
        self.attempt.response(response)
        self.telemetry.end(self.alias, self._index > 0, None)
        return response

    def streaming(self, stream: openai.Stream[Any] | openai.AsyncStream[Any]) -> StreamObserver:
        """The stream's first chunk arrived: from here on it is the caller's."""
        assert self.attempt is not None
        self._breaker_report(None)
        return StreamObserver(self.attempt, stream.response, self.hide_usage_chunk, self._stream_ended)

    def _stream_ended(self, error: BaseException | None) -> None:
        if error is not None:
            self._breaker_report(error)
        self.telemetry.end(self.alias, self._index > 0, error)

    def _breaker_report(self, error: BaseException | None) -> None:
        """Tell the current alias's breaker how it went: a retryable error is a
        failure, anything else (an error that is not retryable too) an answer."""
        breaker = breaker_for(self.alias)
        if error is not None and is_retryable(error):
            moved = breaker.failure(self.settings.breaker_failures)
        else:
            moved = breaker.success()
        self._breaker_moved(self.alias, moved)

    def _breaker_moved(self, alias: str, state: BreakerState | None) -> None:
        if state is not None:
            self.telemetry.breaker(alias, state)


def _request_usage(kwargs: dict[str, Any]) -> bool:
    """Ask a stream for its usage chunk; whether to hide it (the caller did not ask)."""
    options = kwargs.get("stream_options")
    options = options if isinstance(options, dict) else {}
    if options.get("include_usage"):
        return False
    kwargs["stream_options"] = {**options, "include_usage": True}
    return True


def run_sync(call: LogicalCall) -> Any:
    while True:
        try:
            for attempt in Retrying(**call.retrying()):
                with attempt:
                    return _attempt_sync(call)
        except BaseException as error:
            if not call.fall_back(error):
                raise


def _attempt_sync(call: LogicalCall) -> Any:
    create = call.start_attempt(sync_client(call.alias, call.endpoint, call.settings.http_spans))
    assert call.attempt is not None
    try:
        result = create(model=call.endpoint.request_model, **call.kwargs)
        if not isinstance(result, openai.Stream):
            return call.completed(result)
        first = next(result, None)
        if first is None:
            raise StreamTruncatedError(result.response.request)
    except BaseException as error:
        call.attempt_failed(error)
        raise
    finally:
        call.attempt.detach()
    return ObservedStream(result, call.streaming(result), first)


async def run_async(call: LogicalCall) -> Any:
    while True:
        try:
            async for attempt in AsyncRetrying(**call.retrying()):
                with attempt:
                    return await _attempt_async(call)
        except BaseException as error:
            if not call.fall_back(error):
                raise


async def _attempt_async(call: LogicalCall) -> Any:
    create = call.start_attempt(async_client(call.alias, call.endpoint, call.settings.http_spans))
    assert call.attempt is not None
    try:
        result = await create(model=call.endpoint.request_model, **call.kwargs)
        if not isinstance(result, openai.AsyncStream):
            return call.completed(result)
        first = await anext(result, None)
        if first is None:
            raise StreamTruncatedError(result.response.request)
    except BaseException as error:
        call.attempt_failed(error)
        raise
    finally:
        call.attempt.detach()
    return AsyncObservedStream(result, call.streaming(result), first)
