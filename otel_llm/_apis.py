"""The generating APIs, and how to read what they answer (SPEC §4, §6).

A request generates when it is a ``POST`` to one of three paths: chat
completions, the Responses API or embeddings. Each :class:`Api` knows which
request arguments become span attributes, how to read a complete response,
and how to follow its stream; everything else (spans, metrics, retries) is
the same for all three and lives elsewhere. The Responses API is read the way
the OpenTelemetry GenAI OpenAI instrumentation reads it: ``chat`` operation,
usage from ``input_tokens`` / ``output_tokens`` and their details, finish
reasons from the status, ``incomplete_details`` and the output items.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from opentelemetry.util.types import AttributeValue

from ._semconv import gen_ai

__all__ = ["API_BY_PATH", "Answer", "Api", "StreamReader", "Usage"]

Attributes = dict[str, AttributeValue]


@dataclass(slots=True)
class Usage:
    """Token counts of one response, as the provider reported them."""

    input_tokens: int
    output_tokens: int | None
    """``None`` for embeddings, which have no output tokens."""
    cached_input_tokens: int = 0
    """Part of ``input_tokens``."""
    reasoning_tokens: int = 0
    """Part of ``output_tokens``."""


@dataclass(slots=True)
class Answer:
    """What telemetry records of one response."""

    response_id: str | None = None
    response_model: str | None = None
    finish_reasons: list[str] | None = None
    usage: Usage | None = None
    error_type: str | None = None
    """Set when the provider answered with a failure inside a 200 (a ``response.failed``)."""
    output_messages: Callable[[], str] | None = None
    """The ``gen_ai.output.messages`` JSON, built only when content is captured."""


class StreamReader:
    """Follows one stream event by event: what the caller sees, and when it is complete."""

    __slots__ = ("answer", "complete")

    watches_events: ClassVar[bool] = False
    """Whether :meth:`event` sees the server-sent events before the SDK parses them."""

    def __init__(self) -> None:
        self.answer = Answer()
        self.complete = False

    def held_back(self, event: Any) -> bool:
        """Whether ``event`` precedes the output: the attempt may still be retried after it."""
        return False

    def event(self, data: str) -> bool:
        """Read a server-sent event's ``data`` before the SDK parses it; whether the SDK gets it.

        Asked only when :attr:`watches_events`.
        """
        return True

    def observe(self, event: Any, capture: bool) -> bool:
        """Record ``event``; whether the caller gets to see it."""
        raise NotImplementedError

    def finished(self) -> Answer:
        """What the stream carried, once it is over."""
        return self.answer


@dataclass(frozen=True, slots=True)
class Api:
    """One generating API of the SDK: how its requests and answers are read."""

    operation: str
    """``gen_ai.operation.name``."""
    request_attributes: Mapping[str, str]
    """Request body key -> span attribute, recorded when the caller set them."""
    read: Callable[[Any, bool], Answer]
    """A complete response -> its :class:`Answer` (the flag: content is captured)."""
    stream_reader: Callable[[bool], StreamReader] | None = None
    """A new reader for one stream (the flag: hide a usage chunk the caller did not ask for)."""
    stateful_arguments: tuple[str, ...] = ()
    """Request arguments that continue state stored by the provider (the call must stay with it)."""
    more_request_attributes: Callable[[Mapping[str, Any], Attributes], None] | None = None
    """Adds the request attributes that need more than a look-up (``gen_ai.output.type``, ...)."""
    request_content: Callable[[Mapping[str, Any]], Attributes] | None = None
    """The request body -> its content attributes (``gen_ai.input.messages``, ...), when content is captured."""


# -- chat completions ------------------------------------------------------------


def _usage(input_tokens: int | None, output_tokens: int | None, input_details: Any, output_details: Any) -> Usage:
    """Chat and Responses usage alike: their details carry ``cached_tokens`` and ``reasoning_tokens``."""
    cached = (input_details.cached_tokens or 0) if input_details is not None else 0
    reasoning = (output_details.reasoning_tokens or 0) if output_details is not None else 0
    return Usage(input_tokens or 0, output_tokens or 0, cached, reasoning)


def _chat_usage(usage: Any) -> Usage:
    return _usage(
        usage.prompt_tokens, usage.completion_tokens, usage.prompt_tokens_details, usage.completion_tokens_details
    )


def _read_chat(response: Any, capture: bool) -> Answer:
    choices = response.choices or []
    answer = Answer(
        response.id or None,
        response.model or None,
        [choice.finish_reason or "" for choice in choices],
        _chat_usage(response.usage) if response.usage is not None else None,
    )
    if capture:
        texts = {choice.index: _message_text(choice) for choice in choices}
        reasons = {choice.index: choice.finish_reason or "" for choice in choices}
        answer.output_messages = lambda: _assistant_messages(texts, reasons)
    return answer


def _message_text(choice: Any) -> str:
    # A content-filtered choice (Azure) comes with no message at all.
    message = choice.message
    return (message.content or "") if message is not None else ""


class _ChatStream(StreamReader):
    __slots__ = ("_hide_usage_chunk", "_reasons", "_texts")

    watches_events = True

    def __init__(self, hide_usage_chunk: bool) -> None:
        super().__init__()
        self._hide_usage_chunk = hide_usage_chunk
        self._reasons: dict[int, str] = {}
        self._texts: dict[int, list[str]] = {}

    def event(self, data: str) -> bool:
        # Some servers send no finish reason: the SSE terminator completes the answer.
        if data.startswith("[DONE]"):
            self.complete = True
            return True
        # The usage chunk we asked for, read from its JSON: the SDK would spend as
        # long building it as on a dozen content chunks, for the caller never to see it.
        if not self._hide_usage_chunk:
            return True
        at = data.find('"usage":')  # every chunk has it ("usage":null), but only one a usage
        if at < 0 or data.startswith(("null", " null"), at + 8):
            return True
        usage = _bare_usage_chunk(data)
        if usage is None:
            return True  # not the documented usage chunk: the SDK parses it, observe() reads it
        self.answer.usage = usage
        return False

    def observe(self, chunk: Any, capture: bool) -> bool:
        answer = self.answer
        # Azure's first chunk carries only prompt_filter_results, with an empty id and model.
        if answer.response_id is None and chunk.id:
            answer.response_id, answer.response_model = chunk.id, chunk.model or None
        choices = chunk.choices or ()  # some servers send "choices": null
        for choice in choices:
            if choice.finish_reason:
                self._reasons[choice.index] = choice.finish_reason
                self.complete = True
            delta = choice.delta
            if capture and delta is not None and delta.content:
                self._texts.setdefault(choice.index, []).append(delta.content)
        if chunk.usage is not None:
            answer.usage = _chat_usage(chunk.usage)
            # The usage chunk we asked for: "choices": [] (OpenAI) or one empty delta (some proxies).
            return not (self._hide_usage_chunk and all(_says_nothing(choice) for choice in choices))
        return True

    def finished(self) -> Answer:
        reasons, answer = self._reasons, self.answer
        if reasons:
            answer.finish_reasons = [reasons[index] for index in sorted(reasons)]
        if self._texts:
            texts = {index: "".join(parts) for index, parts in self._texts.items()}
            answer.output_messages = lambda: _assistant_messages(texts, reasons)
        return answer


def _bare_usage_chunk(data: str) -> Usage | None:
    """The usage of a chunk that carries nothing else (``"choices": []``, as OpenAI sends it), all counts integers."""
    try:
        chunk = json.loads(data)
    except ValueError:
        return None
    if not isinstance(chunk, dict) or chunk.get("choices") != [] or "error" in chunk:
        return None
    usage = chunk.get("usage")
    if not isinstance(usage, dict):
        return None
    input_details = usage.get("prompt_tokens_details") or {}
    output_details = usage.get("completion_tokens_details") or {}
    if not isinstance(input_details, dict) or not isinstance(output_details, dict):
        return None
    counts: tuple[Any, ...] = (
        usage.get("prompt_tokens"),
        usage.get("completion_tokens"),
        input_details.get("cached_tokens") or 0,
        output_details.get("reasoning_tokens") or 0,
    )
    if not all(type(count) is int for count in counts):
        return None
    return Usage(*counts)


def _says_nothing(choice: Any) -> bool:
    delta = choice.delta
    return not choice.finish_reason and (
        delta is None or not (delta.content or delta.role or delta.tool_calls or delta.refusal or delta.function_call)
    )


def _chat_content(body: Mapping[str, Any]) -> Attributes:
    return {gen_ai.GEN_AI_INPUT_MESSAGES: _messages_json(body.get("messages"))}


def _output_type(format_type: Any, into: Attributes) -> None:
    if format_type in ("json_schema", "json_object"):
        into[gen_ai.GEN_AI_OUTPUT_TYPE] = "json"
    elif format_type == "text":
        into[gen_ai.GEN_AI_OUTPUT_TYPE] = "text"


def _chat_output_type(body: Mapping[str, Any], into: Attributes) -> None:
    response_format = body.get("response_format")
    if isinstance(response_format, Mapping):
        _output_type(response_format.get("type"), into)


CHAT = Api(
    "chat",
    {
        "temperature": gen_ai.GEN_AI_REQUEST_TEMPERATURE,
        "top_p": gen_ai.GEN_AI_REQUEST_TOP_P,
        "max_tokens": gen_ai.GEN_AI_REQUEST_MAX_TOKENS,
        "max_completion_tokens": gen_ai.GEN_AI_REQUEST_MAX_TOKENS,
        "frequency_penalty": gen_ai.GEN_AI_REQUEST_FREQUENCY_PENALTY,
        "presence_penalty": gen_ai.GEN_AI_REQUEST_PRESENCE_PENALTY,
        "seed": gen_ai.GEN_AI_REQUEST_SEED,
        "n": gen_ai.GEN_AI_REQUEST_CHOICE_COUNT,
        "stop": gen_ai.GEN_AI_REQUEST_STOP_SEQUENCES,
    },
    _read_chat,
    _ChatStream,
    more_request_attributes=_chat_output_type,
    request_content=_chat_content,
)


# -- the Responses API -------------------------------------------------------------

_LIFECYCLE_EVENTS = frozenset({"response.created", "response.in_progress", "response.queued"})
_TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
_INCOMPLETE_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}
_TOOL_CALLS = frozenset({"function_call", "custom_tool_call", "computer_call"})


def _status_reason(status: str | None, reason: str | None = None) -> str | None:
    if status == "completed":
        return "stop"
    if status in ("failed", "cancelled"):
        return "error"
    if status == "incomplete":
        return _INCOMPLETE_REASONS.get(reason or "", reason) or "incomplete"
    return None


def _responses_finish_reasons(response: Any) -> list[str]:
    """From the status, and per output item when the response completed (a tool call, a message)."""
    details = response.incomplete_details
    overall = _status_reason(response.status, details.reason if details is not None else None)
    if response.status in ("failed", "cancelled", "incomplete"):
        return [overall] if overall else []
    reasons: list[str] = []
    for item in response.output or []:
        if item.type in _TOOL_CALLS and getattr(item, "status", None) in ("completed", "incomplete", None):
            reason: str | None = "tool_calls"
        elif item.type == "message":
            reason = _status_reason(item.status)
        else:
            continue
        if reason and reason not in reasons:
            reasons.append(reason)
    return reasons or ([overall] if overall else [])


def _responses_usage(usage: Any) -> Usage:
    return _usage(usage.input_tokens, usage.output_tokens, usage.input_tokens_details, usage.output_tokens_details)


def _read_responses(response: Any, capture: bool) -> Answer:
    error = response.error
    answer = Answer(
        response.id or None,
        response.model or None,
        _responses_finish_reasons(response),
        _responses_usage(response.usage) if response.usage is not None else None,
        (error.code or "response.failed") if error is not None else None,
    )
    if capture:
        answer.output_messages = lambda: _responses_output_messages(response)
    return answer


class _ResponsesStream(StreamReader):
    __slots__ = ()

    def __init__(self, hide_usage_chunk: bool) -> None:
        super().__init__()

    def held_back(self, event: Any) -> bool:
        return event.type in _LIFECYCLE_EVENTS

    def observe(self, event: Any, capture: bool) -> bool:
        kind = event.type
        if kind in _TERMINAL_EVENTS:
            self.answer = _read_responses(event.response, capture)
            self.complete = True
        elif kind == "error":
            self.answer.error_type = event.code or "error"
            self.complete = True
        elif kind in _LIFECYCLE_EVENTS and self.answer.response_id is None:
            self.answer.response_id = event.response.id or None
            self.answer.response_model = event.response.model or None
        return True


def _responses_content(body: Mapping[str, Any]) -> Attributes:
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    content: Attributes = {gen_ai.GEN_AI_INPUT_MESSAGES: _messages_json(items)}
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        content[gen_ai.GEN_AI_SYSTEM_INSTRUCTIONS] = json.dumps([{"type": "text", "content": instructions}])
    return content


def _responses_output_messages(response: Any) -> str:
    messages = []
    for item in response.output or []:
        if item.type == "message":
            text = "".join(part.text if part.type == "output_text" else part.refusal for part in item.content)
            messages.append(
                {
                    "role": item.role,
                    "parts": [{"type": "text", "content": text}],
                    "finish_reason": _status_reason(item.status) or "",
                }
            )
    return json.dumps(messages)


def _responses_output_type(body: Mapping[str, Any], into: Attributes) -> None:
    text = body.get("text")
    if isinstance(text, Mapping) and isinstance(text.get("format"), Mapping):
        _output_type(text["format"].get("type"), into)


RESPONSES = Api(
    "chat",
    {
        "temperature": gen_ai.GEN_AI_REQUEST_TEMPERATURE,
        "top_p": gen_ai.GEN_AI_REQUEST_TOP_P,
        "max_output_tokens": gen_ai.GEN_AI_REQUEST_MAX_TOKENS,
    },
    _read_responses,
    _ResponsesStream,
    stateful_arguments=("previous_response_id", "conversation"),
    more_request_attributes=_responses_output_type,
    request_content=_responses_content,
)


# -- embeddings ---------------------------------------------------------------------


def _read_embeddings(response: Any, capture: bool) -> Answer:
    usage = response.usage
    return Answer(None, response.model or None, None, Usage(usage.prompt_tokens or 0, None) if usage else None)


def _embeddings_encoding(body: Mapping[str, Any], into: Attributes) -> None:
    encoding = body.get("encoding_format")
    if isinstance(encoding, str):
        into[gen_ai.GEN_AI_REQUEST_ENCODING_FORMATS] = [encoding]


EMBEDDINGS = Api(
    "embeddings",
    {"dimensions": gen_ai.GEN_AI_EMBEDDINGS_DIMENSION_COUNT},
    _read_embeddings,
    more_request_attributes=_embeddings_encoding,
)

API_BY_PATH: Mapping[str, Api] = {"/chat/completions": CHAT, "/responses": RESPONSES, "/embeddings": EMBEDDINGS}
"""The generating APIs by the request path the SDK builds (before Azure adds its deployment)."""


# -- content ------------------------------------------------------------------------


def _messages_json(messages: Any) -> str:
    """Chat messages or Responses input items as ``gen_ai.input.messages`` (text parts only)."""
    return json.dumps(
        [
            {"role": message.get("role"), "parts": [{"type": "text", "content": _text_of(message.get("content"))}]}
            for message in messages or []
            if isinstance(message, Mapping) and "role" in message
        ]
    )


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones
        return "".join(
            part.get("text", "") for part in content if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    return ""


def _assistant_messages(texts: Mapping[int, str], reasons: Mapping[int, str]) -> str:
    return json.dumps(
        [
            {
                "role": "assistant",
                "parts": [{"type": "text", "content": texts[index]}],
                "finish_reason": reasons.get(index, ""),
            }
            for index in sorted(texts)
        ]
    )
