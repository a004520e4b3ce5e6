"""Streams handed to the caller: the ``openai`` SDK's ``Stream`` / ``AsyncStream``
(``isinstance`` still holds), observed event by event.

The attempt reads a stream ahead until its first event the caller may not
lose (a chat chunk; a Responses output event, the lifecycle events before it
held back), so a stream that fails before any output is retried or falls
back. From then on the stream is the caller's: the observer records the time
to the first event, the usage and the finish reasons, hides the usage chunk
that we asked for when the caller did not, and ends the attempt and call
spans when the stream ends: exhausted, failed, closed early or collected. A
stream that ends incomplete (a chat stream with neither a finish reason nor
``[DONE]``, a Responses stream without its terminal event) raises
:class:`StreamTruncatedError` instead of ending quietly, and so does one that
stalls for longer than ``LLM_STREAM_IDLE_TIMEOUT_S`` between two events.

A raw response (``with_raw_response`` / ``with_streaming_response``) of a
stream is the caller's once its headers arrived (its bytes may be read
directly, so nothing is read ahead); it is handed over behind a proxy whose
``parse()`` gives the observed stream.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextvars import Token
from typing import Any

import httpx2
import openai
import wrapt
from openai import AsyncAPIResponse, AsyncStream, Stream

from ._apis import StreamReader
from ._errors import StreamTruncatedError
from ._guard import guarded, report_failure
from ._telemetry import AttemptTelemetry, error_type
from ._transport import finish_body_on_close, read_deadline

__all__ = [
    "AsyncObservedStream",
    "ObservedRawResponse",
    "ObservedStream",
    "StreamObserver",
]


class StreamObserver:
    """What the sync and async stream wrappers share: everything but the waiting."""

    __slots__ = (
        "_blind",
        "_ended",
        "_time_to_first_chunk",
        "attempt",
        "idle_timeout",
        "on_end",
        "reader",
        "response",
    )

    def __init__(
        self, attempt: AttemptTelemetry, response: httpx2.Response, reader: StreamReader, idle_timeout: float | None
    ) -> None:
        self.attempt = attempt
        self.response = response
        self.reader = reader
        self.idle_timeout = idle_timeout
        """``LLM_STREAM_IDLE_TIMEOUT_S``: the longest wait for the next event, once the stream is the caller's."""
        self.on_end: Callable[[BaseException | None, str | None], None] | None = None
        """Set when the stream is handed over: reports the outcome (error, ``error.type``) to the call."""
        self._time_to_first_chunk: float | None = None
        self._ended = False
        self._blind = False  # an event could not be read: its completeness is not ours to judge

    def follow(self, stream: Stream[Any] | AsyncStream[Any]) -> None:
        """Show ``stream``'s server-sent events to the reader before the SDK parses them, when it watches them."""
        if self.reader.watches_events:
            guarded(_watch_events, stream, self)

    def passes(self, data: str) -> bool:
        """Whether the SDK gets the server-sent event ``data`` (the reader may keep it for itself)."""
        reader = self.reader
        try:
            passes = reader.event(data)
        except Exception:
            report_failure(reader.event)
            return True
        if reader.complete:
            finish_body_on_close(self.response)  # the answer is complete: let the connection be reused
        return passes

    def wait_for_next(self) -> Token[float | None] | None:
        """Bound the wait for the next event by the idle timeout; the token to give :meth:`waited`."""
        if self.idle_timeout is None:
            return None
        return read_deadline.set(time.monotonic() + self.idle_timeout)

    @staticmethod
    def waited(token: Token[float | None] | None) -> None:
        if token is not None:
            read_deadline.reset(token)

    def show(self, event: Any) -> bool:
        """Observe ``event``; whether the caller gets to see it."""
        if self._time_to_first_chunk is None:
            self._time_to_first_chunk = self.attempt.elapsed()
        reader = self.reader
        try:
            visible = reader.observe(event, self.attempt.capture)
        except Exception:
            report_failure(reader.observe)
            self._blind = True
            return True
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

    def failed(self, error: BaseException) -> StreamTruncatedError | None:
        """The stream failed while the caller read it; the error to raise instead, if a stall caused it."""
        stalled = None
        if isinstance(error, openai.APITimeoutError) and self._past_idle_deadline():
            stalled = StreamTruncatedError(self.response.request, stalled_s=self.idle_timeout)
        self.end(stalled or error)
        return stalled

    def _past_idle_deadline(self) -> bool:
        deadline = read_deadline.get()
        # A read times out at its deadline or just after; a shorter timeout of the request fires well before.
        return self.idle_timeout is not None and deadline is not None and time.monotonic() >= deadline - 0.01

    def end(self, error: BaseException | None) -> None:
        if self._ended or self.on_end is None:
            return
        self._ended = True
        answer = guarded(self.reader.finished, default=self.reader.answer)
        kind = error_type(error) if error is not None else answer.error_type
        guarded(self.attempt.answered, answer, self._time_to_first_chunk, kind)
        self.on_end(error, kind)


class _Observed(wrapt.ObjectProxy[Any]):
    """What both wrappers hold: the observer, and the events read ahead by the attempt."""

    def __init__(self, stream: Stream[Any] | AsyncStream[Any], observer: StreamObserver) -> None:
        super().__init__(stream)
        observer.follow(stream)
        self._self_observer = observer
        self._self_held: deque[Any] = deque()

    def _hold(self, event: Any) -> bool:
        """Read ahead ``event``; whether to read on (it precedes the output, which may still be retried)."""
        observer = self._self_observer
        if observer.show(event):
            self._self_held.append(event)
        return observer.reader.held_back(event)

    def _truncated(self) -> StreamTruncatedError:
        """The stream ended before its first output: retryable, since the caller has seen nothing."""
        return StreamTruncatedError(self._self_observer.response.request)

    def __del__(self) -> None:
        self._self_observer.end(None)


class ObservedStream(_Observed):
    """An ``openai.Stream`` whose events are observed."""

    __wrapped__: Stream[Any]

    def read_ahead(self) -> ObservedStream:
        """Read up to the first event that is not held back."""
        for event in self.__wrapped__:
            if not self._hold(event):
                return self
        raise self._truncated()

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if self._self_held:
            return self._self_held.popleft()
        observer = self._self_observer
        while True:
            token = observer.wait_for_next()
            try:
                event = self.__wrapped__.__next__()
            except StopIteration:
                observer.exhausted()
                raise
            except BaseException as error:
                stalled = observer.failed(error)
                if stalled is None:
                    raise
                raise stalled from error
            finally:
                observer.waited(token)
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

    async def read_ahead(self) -> AsyncObservedStream:
        """The async twin of :meth:`ObservedStream.read_ahead`."""
        async for event in self.__wrapped__:
            if not self._hold(event):
                return self
        raise self._truncated()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        if self._self_held:
            return self._self_held.popleft()
        observer = self._self_observer
        while True:
            token = observer.wait_for_next()
            try:
                event = await self.__wrapped__.__anext__()
            except StopAsyncIteration:
                observer.exhausted()
                raise
            except BaseException as error:
                stalled = observer.failed(error)
                if stalled is None:
                    raise
                raise stalled from error
            finally:
                observer.waited(token)
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
            self._self_stream = self._self_observed(self.__wrapped__.parse(), self._self_observer)
        return self._self_stream

    async def _observe_async(self) -> _Observed:
        if self._self_stream is None:
            stream = await self.__wrapped__.parse()
            self._self_stream = self._self_observed(stream, self._self_observer)
        return self._self_stream

    def close(self) -> Any:
        self._self_observer.end(None)
        return self.__wrapped__.close()

    def __del__(self) -> None:
        self._self_observer.end(None)


def _watch_events(stream: Stream[Any] | AsyncStream[Any], observer: StreamObserver) -> None:
    # The SDK parses every event, and stops at [DONE] without telling: watch its decoder (it offers no hook).
    stream._decoder = _EventWatch(stream._decoder, observer)


class _EventWatch:
    """An SDK server-sent-event decoder that passes on only the events the observer lets through."""

    __slots__ = ("_decoder", "_observer")

    def __init__(self, decoder: Any, observer: StreamObserver) -> None:
        self._decoder = decoder
        self._observer = observer

    def iter_bytes(self, iterator: Iterator[bytes]) -> Iterator[Any]:
        passes = self._observer.passes
        for event in self._decoder.iter_bytes(iterator):
            if passes(event.data):
                yield event

    async def aiter_bytes(self, iterator: AsyncIterator[bytes]) -> AsyncIterator[Any]:
        passes = self._observer.passes
        async for event in self._decoder.aiter_bytes(iterator):
            if passes(event.data):
                yield event
