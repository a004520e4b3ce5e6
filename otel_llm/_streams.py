"""Streams handed to the caller: the ``openai`` SDK's ``Stream`` / ``AsyncStream``
(``isinstance`` still holds), observed chunk by chunk.

The observer records the time to the first chunk, the finish reasons and the
usage; it hides the usage-only chunk that we asked for when the caller did not;
and it ends the attempt and call spans when the stream ends: exhausted, failed,
closed early or garbage-collected. A stream that ends without a finish reason
is truncated, and raises :class:`StreamTruncatedError` instead of ending quietly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import wrapt
from openai import AsyncStream, Stream
from openai.types.chat import ChatCompletionChunk

from ._errors import StreamTruncatedError
from ._telemetry import AttemptTelemetry, StreamState
from ._transport import finish_body_on_close

__all__ = ["AsyncObservedStream", "ObservedStream", "StreamObserver"]


class StreamObserver:
    """What the sync and async stream wrappers share: everything but the waiting."""

    __slots__ = ("_ended", "_first", "_on_end", "attempt", "hide_usage_chunk", "response", "state")

    def __init__(
        self,
        attempt: AttemptTelemetry,
        response: httpx2.Response,
        hide_usage_chunk: bool,
        on_end: Callable[[BaseException | None], None],
    ) -> None:
        self.attempt = attempt
        self.response = response
        self.hide_usage_chunk = hide_usage_chunk
        self.state = StreamState()
        self._on_end = on_end
        self._first = True
        self._ended = False

    def show(self, chunk: ChatCompletionChunk) -> bool:
        """Observe ``chunk``; whether the caller gets to see it."""
        state = self.state
        if self._first:
            self._first = False
            state.time_to_first_chunk = self.attempt.elapsed()
            state.response_id = chunk.id
            state.response_model = chunk.model
        for choice in chunk.choices:
            if choice.finish_reason:
                state.finish_reasons[choice.index] = choice.finish_reason
                # The answer is complete: let the connection be reused.
                finish_body_on_close(self.response)
            if self.attempt.capture and choice.delta.content:
                state.texts.setdefault(choice.index, []).append(choice.delta.content)
        if chunk.usage is not None:
            state.usage = chunk.usage
            return not (self.hide_usage_chunk and not chunk.choices)
        return True

    def exhausted(self) -> None:
        """The stream ended by itself: complete, or truncated (raised)."""
        if self.state.finish_reasons:
            self.end(None)
            return
        error = StreamTruncatedError(self.response.request)
        self.end(error)
        raise error from None

    def end(self, error: BaseException | None) -> None:
        if not self._ended:
            self._ended = True
            self.attempt.stream_ended(self.state, error)
            self._on_end(error)


class _Observed(wrapt.ObjectProxy[Any]):
    """What both wrappers hold: the observer, and the first chunk, read ahead by the attempt."""

    def __init__(self, stream: Any, observer: StreamObserver, first: ChatCompletionChunk) -> None:
        super().__init__(stream)
        self._self_observer = observer
        self._self_first = first if observer.show(first) else None

    def _take_first(self) -> ChatCompletionChunk | None:
        first, self._self_first = self._self_first, None
        return first

    def __del__(self) -> None:
        self._self_observer.end(None)


class ObservedStream(_Observed):
    """An ``openai.Stream`` whose chunks are observed."""

    __wrapped__: Stream[Any]

    def __iter__(self) -> ObservedStream:
        return self

    def __next__(self) -> Any:
        first = self._take_first()
        if first is not None:
            return first
        observer = self._self_observer
        while True:
            try:
                chunk = self.__wrapped__.__next__()
            except StopIteration:
                observer.exhausted()
                raise
            except BaseException as error:
                observer.end(error)
                raise
            if observer.show(chunk):
                return chunk

    def close(self) -> None:
        self.__wrapped__.close()
        self._self_observer.end(None)

    def __enter__(self) -> ObservedStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncObservedStream(_Observed):
    """An ``openai.AsyncStream`` whose chunks are observed."""

    __wrapped__: AsyncStream[Any]

    def __aiter__(self) -> AsyncObservedStream:
        return self

    async def __anext__(self) -> Any:
        first = self._take_first()
        if first is not None:
            return first
        observer = self._self_observer
        while True:
            try:
                chunk = await self.__wrapped__.__anext__()
            except StopAsyncIteration:
                observer.exhausted()
                raise
            except BaseException as error:
                observer.end(error)
                raise
            if observer.show(chunk):
                return chunk

    async def close(self) -> None:
        await self.__wrapped__.close()
        self._self_observer.end(None)

    async def __aenter__(self) -> AsyncObservedStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
