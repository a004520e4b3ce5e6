"""Streams handed to the caller: the ``openai`` SDK's ``Stream`` / ``AsyncStream``
(``isinstance`` still holds), observed event by event.

The attempt reads a stream ahead until its first event the caller may not
lose (a chat chunk; a Responses output event, the lifecycle events before it
held back), so a stream that fails before any output is retried or falls
back. From then on the stream is the caller's: the observer records the time
to the first event, the usage and the finish reasons, hides the usage chunk
that we asked for when the caller did not, and ends the attempt and call
spans when the stream ends: exhausted, failed, closed early or collected. A
stream that ends incomplete (no finish reason, no terminal event) raises
:class:`StreamTruncatedError` instead of ending quietly.

A raw response (``with_raw_response`` / ``with_streaming_response``) of a
stream is the caller's once its headers arrived (its bytes may be read
directly, so nothing is read ahead); it is handed over behind a proxy whose
``parse()`` gives the observed stream.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

import httpx2
import wrapt
from openai import AsyncAPIResponse, AsyncStream, Stream

from ._apis import StreamReader
from ._errors import StreamTruncatedError
from ._guard import guarded
from ._telemetry import AttemptTelemetry, error_type
from ._transport import finish_body_on_close

__all__ = [
    "AsyncObservedStream",
    "ObservedRawResponse",
    "ObservedStream",
    "StreamObserver",
    "read_ahead",
    "read_ahead_async",
]


class StreamObserver:
    """What the sync and async stream wrappers share: everything but the waiting."""

    __slots__ = ("_blind", "_ended", "_time_to_first_chunk", "attempt", "on_end", "reader", "response")

    def __init__(self, attempt: AttemptTelemetry, response: httpx2.Response, reader: StreamReader) -> None:
        self.attempt = attempt
        self.response = response
        self.reader = reader
        self.on_end: Callable[[BaseException | None, str | None], None] | None = None
        """Set when the stream is handed over: reports the outcome (error, ``error.type``) to the call."""
        self._time_to_first_chunk: float | None = None
        self._ended = False
        self._blind = False  # an event could not be read: its completeness is not ours to judge

    def show(self, event: Any) -> bool:
        """Observe ``event``; whether the caller gets to see it."""
        if self._time_to_first_chunk is None:
            self._time_to_first_chunk = self.attempt.elapsed()
        visible = guarded(self._observe, event, default=None)
        if visible is None:
            self._blind = True
            return True
        return visible

    def _observe(self, event: Any) -> bool:
        reader = self.reader
        visible = reader.observe(event, self.attempt.capture)
        if reader.complete:
            finish_body_on_close(self.response)  # the answer is complete: let the connection be reused
        return visible

    def exhausted(self) -> None:
        """The stream ended by itself: complete, or truncated (raised)."""
        if self.reader.complete or self._blind:
            self.end(None)
            return
        error = StreamTruncatedError(self.response.request)
        self.end(error)
        raise error from None

    def end(self, error: BaseException | None) -> None:
        if self._ended or self.on_end is None:
            return
        self._ended = True
        answer = self.reader.finished()
        kind = error_type(error) if error is not None else answer.error_type
        guarded(self.attempt.answered, answer, self._time_to_first_chunk, kind)
        self.on_end(error, kind)


def read_ahead(stream: Iterable[Any], observer: StreamObserver) -> deque[Any]:
    """Read ``stream`` up to its first event that is not held back; the events the caller will see.

    A stream that ends before it is truncated: retryable, since the caller has seen nothing.
    """
    held: deque[Any] = deque()
    for event in stream:
        if observer.show(event):
            held.append(event)
        if not observer.reader.held_back(event):
            return held
    raise StreamTruncatedError(observer.response.request)


async def read_ahead_async(stream: AsyncIterator[Any], observer: StreamObserver) -> deque[Any]:
    """The async twin of :func:`read_ahead`."""
    held: deque[Any] = deque()
    async for event in stream:
        if observer.show(event):
            held.append(event)
        if not observer.reader.held_back(event):
            return held
    raise StreamTruncatedError(observer.response.request)


class _Observed(wrapt.ObjectProxy[Any]):
    """What both wrappers hold: the observer, and the events read ahead by the attempt."""

    def __init__(self, stream: Any, observer: StreamObserver, held: deque[Any]) -> None:
        super().__init__(stream)
        self._self_observer = observer
        self._self_held = held

    def __del__(self) -> None:
        self._self_observer.end(None)


class ObservedStream(_Observed):
    """An ``openai.Stream`` whose events are observed."""

    __wrapped__: Stream[Any]

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if self._self_held:
            return self._self_held.popleft()
        observer = self._self_observer
        while True:
            try:
                event = self.__wrapped__.__next__()
            except StopIteration:
                observer.exhausted()
                raise
            except BaseException as error:
                observer.end(error)
                raise
            if observer.show(event):
                return event

    def close(self) -> None:
        self.__wrapped__.close()
        self._self_observer.end(None)

    def __enter__(self) -> ObservedStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncObservedStream(_Observed):
    """An ``openai.AsyncStream`` whose events are observed."""

    __wrapped__: AsyncStream[Any]

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        if self._self_held:
            return self._self_held.popleft()
        observer = self._self_observer
        while True:
            try:
                event = await self.__wrapped__.__anext__()
            except StopAsyncIteration:
                observer.exhausted()
                raise
            except BaseException as error:
                observer.end(error)
                raise
            if observer.show(event):
                return event

    async def close(self) -> None:
        await self.__wrapped__.close()
        self._self_observer.end(None)

    async def __aenter__(self) -> AsyncObservedStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class ObservedRawResponse(wrapt.ObjectProxy[Any]):
    """The SDK's raw response of a stream, whose ``parse()`` gives the observed stream."""

    def __init__(self, response: Any, observer: StreamObserver, observed: type[_Observed]) -> None:
        super().__init__(response)
        self._self_observer = observer
        self._self_observed = observed
        self._self_stream: _Observed | None = None

    def parse(self, *, to: Any = None) -> Any:
        """The observed stream, the same at every call; awaitable when the SDK's ``parse()`` is."""
        if to is not None:
            return self.__wrapped__.parse(to=to)
        if isinstance(self.__wrapped__, AsyncAPIResponse):  # an async client's streaming response
            return self._observe_async()
        if self._self_stream is None:
            self._self_stream = self._self_observed(self.__wrapped__.parse(), self._self_observer, deque())
        return self._self_stream

    async def _observe_async(self) -> _Observed:
        if self._self_stream is None:
            stream = await self.__wrapped__.parse()
            self._self_stream = self._self_observed(stream, self._self_observer, deque())
        return self._self_stream

    def close(self) -> Any:
        self._self_observer.end(None)
        return self.__wrapped__.close()

    def __del__(self) -> None:
        self._self_observer.end(None)
