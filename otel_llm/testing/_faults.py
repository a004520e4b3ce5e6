"""Scripted failures for the mock server.

Retry, fallback and timeout code is only trustworthy if it has seen the failures
providers really produce: throttling with ``Retry-After``, overloaded servers,
slow answers, servers that never answer, connections dropped mid-flight, bodies
that do not parse, and streams that stall or are cut halfway. A :class:`Fault` describes one such failure; the server
applies queued faults to requests one at a time (see
:meth:`MockLLMServer.add_faults <otel_llm.testing.MockLLMServer.add_faults>`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = ["Fault", "FaultKind"]

FaultKind = Literal["status", "delay", "hang", "drop", "malformed", "cut_stream", "stall_stream"]


@dataclass(frozen=True, slots=True)
class Fault:
    """One scripted failure, consumed by exactly one request.

    Build faults with the class methods (:meth:`status`, :meth:`delay`,
    :meth:`hang`, :meth:`drop`, :meth:`malformed`, :meth:`cut_stream`,
    :meth:`stall_stream`) rather than the constructor: they validate their
    arguments and fill realistic defaults.
    """

    kind: FaultKind
    status_code: int | None = None
    """HTTP status of a ``status`` fault."""
    retry_after: float | None = None
    """Seconds sent as ``Retry-After`` (may be fractional)."""
    retry_after_ms: float | None = None
    """Milliseconds sent as ``retry-after-ms`` (OpenAI's finer-grained header)."""
    message: str | None = None
    """``error.message`` of the body; a realistic default when ``None``."""
    error_code: str | None = None
    """``error.code`` of the body; a realistic default when ``None``."""
    error_type: str | None = None
    """``error.type`` of the body; a realistic default when ``None``."""
    seconds: float = 0.0
    """How long a ``delay`` fault waits before answering, or a ``stall_stream`` fault stays silent."""
    after_chunks: int = 0
    """Content chunks (chat) or text deltas (Responses) a ``cut_stream`` fault sends before cutting."""
    after_events: int = 0
    """SSE events a ``stall_stream`` fault sends before falling silent."""
    clean: bool = False
    """Whether a ``cut_stream`` fault ends the HTTP body properly instead of dropping the connection."""

    @classmethod
    def status(
        cls,
        code: int,
        *,
        retry_after: float | None = None,
        retry_after_ms: float | None = None,
        message: str | None = None,
        error_code: str | None = None,
        error_type: str | None = None,
    ) -> Fault:
        """Answer with HTTP status ``code`` and an OpenAI-shaped error body.

        ``error_code`` / ``error_type`` override the body's ``code`` / ``type``
        (e.g. ``Fault.status(400, error_code="content_filter")`` for a
        content-filter refusal). ``retry_after`` adds ``Retry-After`` (seconds)
        and ``retry_after_ms`` adds ``retry-after-ms``, as OpenAI sends them.
        """
        if isinstance(code, bool) or not isinstance(code, int) or not 400 <= code <= 599:
            raise ValueError(f"Fault.status needs an HTTP error status 400-599, got {code!r}")
        _check_seconds("retry_after", retry_after)
        _check_seconds("retry_after_ms", retry_after_ms)
        return cls(
            kind="status",
            status_code=code,
            retry_after=retry_after,
            retry_after_ms=retry_after_ms,
            message=message,
            error_code=error_code,
            error_type=error_type,
        )

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Wait ``seconds``, then answer normally: exercises client timeouts.

        A client that gives up first ends the wait (within about 50 ms): nothing is answered.
        """
        _check_seconds("seconds", seconds)
        return cls(kind="delay", seconds=float(seconds))

    @classmethod
    def hang(cls) -> Fault:
        """Accept the request and never answer: no status line, no headers, no body.

        The connection stays open until the client gives up (a client
        timeout: ``openai.APITimeoutError``) or the server stops; the handler
        notices the client leaving within about 50 ms, so no thread lingers.
        """
        return cls(kind="hang")

    @classmethod
    def drop(cls) -> Fault:
        """Close the TCP connection without sending any response."""
        return cls(kind="drop")

    @classmethod
    def malformed(cls) -> Fault:
        """Answer 200 with a body that is not valid JSON.

        A non-streamed request gets ``content-type: application/json`` with a
        truncated JSON document (a ``chat.completion`` or a Responses
        ``response``); a streamed request gets an event stream whose first
        event's data is not JSON (for Responses, an ``event: response.created``
        with truncated data, and no ``[DONE]``).
        """
        return cls(kind="malformed")

    @classmethod
    def cut_stream(cls, after_chunks: int, *, clean: bool = False) -> Fault:
        """Send ``after_chunks`` content chunks of a stream, then stop.

        Chat completions: the role chunk(s) (after Azure's prompt filter chunk
        under ``Quirk.PROMPT_FILTER_CHUNK``), then ``after_chunks`` content
        chunks (one per token and choice); no ``finish_reason`` and no
        ``[DONE]`` follow.

        Responses: the chunks are the ``response.output_text.delta`` events.
        ``after_chunks=0`` sends only ``response.created`` and
        ``response.in_progress``, cutting before the first output event;
        ``after_chunks=N >= 1`` also sends ``response.output_item.added`` and
        ``response.content_part.added``, then the first N deltas (all of them
        when N is larger). Nothing after the deltas is sent: no ``.done``
        events and no terminal ``response.completed`` / ``response.incomplete``.

        By default the connection is closed mid-body, as when a provider or
        proxy dies mid-stream; ``clean=True`` ends the HTTP body properly, as a
        proxy that gives up might, so only the missing finish reason (chat) or
        terminal event (Responses) tells the answer is incomplete. A
        non-streamed request has nothing to cut and gets :meth:`drop` instead.
        """
        _check_count("after_chunks", after_chunks)
        return cls(kind="cut_stream", after_chunks=after_chunks, clean=clean)

    @classmethod
    def stall_stream(cls, after_events: int, seconds: float) -> Fault:
        """Send a stream's headers and first ``after_events`` events, stay silent ``seconds``, then the rest.

        Every SSE event counts: for chat the first is the role chunk (with
        ``Quirk.PROMPT_FILTER_CHUNK``, the prompt filter chunk), and ``[DONE]``
        is the last; for Responses, ``response.created`` is the first.
        ``after_events=0`` stalls after the headers, before any body. The events
        before the silence have really left (flushed), so the client sees them,
        then the gap (read timeouts fire in it), then the rest and a complete
        stream. The silence ends early when the client leaves or the server
        stops. A non-streamed request waits ``seconds`` before its answer, as
        with :meth:`delay`.
        """
        _check_count("after_events", after_events)
        _check_seconds("seconds", seconds)
        return cls(kind="stall_stream", after_events=after_events, seconds=float(seconds))


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")


def _check_seconds(name: str, value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
