"""Spans and metrics of one logical call and its attempts (SPEC §6).

A logical call is one INTERNAL span ``{operation} {api_name}``; each attempt
is a CLIENT span ``{operation} {request model}`` under it, with the GenAI
semantic-convention attributes. Every LLM call pays for what happens here, so
the attribute sets that depend only on configuration are built once and
reused, each span gets its response attributes in one ``set_attributes``,
and nothing is logged per call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from timeit import default_timer
from typing import Any

import openai
from opentelemetry import context, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from . import _semconv as names
from ._cost import CostFunction
from ._endpoints import Endpoint
from ._selection import Selection
from ._semconv import gen_ai, instruments, tracer

__all__ = ["AttemptTelemetry", "CallTelemetry", "Usage", "error_type"]

Attributes = dict[str, AttributeValue]

# Request arguments recorded on the attempt span, when the caller set them.
_REQUEST_ATTRIBUTES = {
    "temperature": gen_ai.GEN_AI_REQUEST_TEMPERATURE,
    "top_p": gen_ai.GEN_AI_REQUEST_TOP_P,
    "max_tokens": gen_ai.GEN_AI_REQUEST_MAX_TOKENS,
    "max_completion_tokens": gen_ai.GEN_AI_REQUEST_MAX_TOKENS,
    "frequency_penalty": gen_ai.GEN_AI_REQUEST_FREQUENCY_PENALTY,
    "presence_penalty": gen_ai.GEN_AI_REQUEST_PRESENCE_PENALTY,
    "seed": gen_ai.GEN_AI_REQUEST_SEED,
    "n": gen_ai.GEN_AI_REQUEST_CHOICE_COUNT,
    "stop": gen_ai.GEN_AI_REQUEST_STOP_SEQUENCES,
    "dimensions": gen_ai.GEN_AI_EMBEDDINGS_DIMENSION_COUNT,
    "encoding_format": gen_ai.GEN_AI_REQUEST_ENCODING_FORMATS,
}


@dataclass(slots=True)
class Usage:
    """Token counts of one response, as the provider reported them."""

    input_tokens: int
    output_tokens: int | None
    """``None`` for embeddings, which have no output tokens."""
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def of(cls, usage: Any) -> Usage:
        """From an ``openai`` ``CompletionUsage`` (chat) or embeddings ``Usage``."""
        cached = reasoning = 0
        details = getattr(usage, "prompt_tokens_details", None)
        if details is not None:
            cached = details.cached_tokens or 0
        details = getattr(usage, "completion_tokens_details", None)
        if details is not None:
            reasoning = details.reasoning_tokens or 0
        return cls(usage.prompt_tokens or 0, getattr(usage, "completion_tokens", None), cached, reasoning)


_error_types: dict[type[BaseException], str] = {}


def error_type(error: BaseException) -> str:
    """``error.type``: the HTTP status when the provider answered, else the class name."""
    if isinstance(error, openai.APIStatusError):
        return str(error.status_code)
    cls = type(error)
    name = _error_types.get(cls)
    if name is None:
        package = cls.__module__.partition(".")[0]
        name = _error_types[cls] = cls.__qualname__ if package == "builtins" else f"{package}.{cls.__qualname__}"
    return name


# Attribute sets that depend only on configuration are built once per
# combination (bounded, should API names ever come from user input).
_SHAPES = 4096


@lru_cache(maxsize=_SHAPES)
def _call_shape(operation: str, api_name: str, source: str) -> tuple[str, Attributes]:
    """The call span's name and start attributes."""
    attributes: Attributes = {
        gen_ai.GEN_AI_OPERATION_NAME: operation,
        names.API_NAME: api_name,
        names.SELECTION_SOURCE: source,
    }
    return f"{operation} {api_name}", attributes


@lru_cache(maxsize=_SHAPES)
def _outcome_attributes(api_name: str, alias: str, source: str, outcome: str) -> Attributes:
    """The attributes of ``otel_llm.call.duration``."""
    return {names.API_NAME: api_name, names.MODEL_ALIAS: alias, names.SELECTION_SOURCE: source, names.OUTCOME: outcome}


class _AttemptShape:
    """What the attempt spans and metrics of one (operation, API, alias) share."""

    __slots__ = ("cost_attributes", "input_tokens", "metric", "output_tokens", "span", "span_name")

    def __init__(
        self, operation: str, api_name: str, alias: str, endpoint: Endpoint, host: str, port: int | None
    ) -> None:
        request_model = endpoint.request_model
        self.span_name = f"{operation} {request_model}"
        self.metric: Attributes = {
            gen_ai.GEN_AI_OPERATION_NAME: operation,
            gen_ai.GEN_AI_PROVIDER_NAME: endpoint.otel_provider_name,
            gen_ai.GEN_AI_REQUEST_MODEL: request_model,
            names.API_NAME: api_name,
            names.MODEL_ALIAS: alias,
        }
        self.span: Attributes = {**self.metric, names.SERVER_ADDRESS: host}
        if port is not None:
            self.span[names.SERVER_PORT] = port
        self.input_tokens: Attributes = {**self.metric, gen_ai.GEN_AI_TOKEN_TYPE: "input"}
        self.output_tokens: Attributes = {**self.metric, gen_ai.GEN_AI_TOKEN_TYPE: "output"}
        self.cost_attributes: Attributes = {
            names.API_NAME: api_name,
            names.MODEL_ALIAS: alias,
            gen_ai.GEN_AI_REQUEST_MODEL: request_model,
        }


_attempt_shape = lru_cache(maxsize=_SHAPES)(_AttemptShape)


class CallTelemetry:
    """The logical call: its span, parent of the attempts, and its totals."""

    __slots__ = (
        "_start",
        "attempts",
        "context",
        "cost",
        "input_tokens",
        "operation",
        "output_tokens",
        "selection",
        "span",
    )

    def __init__(self, operation: str, selection: Selection) -> None:
        self.operation = operation
        self.selection = selection
        self.attempts = 0
        self.input_tokens: int | None = None  # totals over the attempts that reported usage
        self.output_tokens: int | None = None
        self.cost: float | None = None
        name, attributes = _call_shape(operation, selection.api_name, selection.source)
        self._start = default_timer()
        self.span = tracer.start_span(name, kind=SpanKind.INTERNAL, attributes=attributes)
        self.context = trace.set_span_in_context(self.span)

    def fallback(self, from_alias: str, to_alias: str, error: str) -> None:
        """One step down the fallback chain."""
        attributes: Attributes = {
            names.API_NAME: self.selection.api_name,
            names.FALLBACK_FROM: from_alias,
            names.FALLBACK_TO: to_alias,
            names.ERROR_TYPE: error,
        }
        self.span.add_event(names.FALLBACK_EVENT, attributes)
        instruments.fallbacks.add(1, attributes)

    def wait(self, alias: str, seconds: float, error: BaseException) -> None:
        """A backoff (or the provider's Retry-After) before the next attempt on ``alias``."""
        self.span.add_event(
            names.WAIT_EVENT,
            {names.MODEL_ALIAS: alias, names.WAIT_SECONDS: seconds, names.ERROR_TYPE: error_type(error)},
        )

    def breaker(self, alias: str, state: str) -> None:
        """``alias``'s circuit breaker changed state during this call."""
        attributes: Attributes = {names.MODEL_ALIAS: alias, names.BREAKER_STATE: state}
        self.span.add_event(names.BREAKER_EVENT, attributes)
        instruments.breaker_transitions.add(1, attributes)

    def end(self, alias: str, fallback_used: bool, error: BaseException | None) -> None:
        """The call is over: record its outcome and totals."""
        duration = default_timer() - self._start
        span = self.span
        attributes: Attributes = {
            names.MODEL_ALIAS: alias,
            names.ATTEMPTS: self.attempts,
            names.FALLBACK_USED: fallback_used,
        }
        if self.input_tokens is not None:
            attributes[gen_ai.GEN_AI_USAGE_INPUT_TOKENS] = self.input_tokens
        if self.output_tokens is not None:
            attributes[gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS] = self.output_tokens
        if self.cost is not None:
            attributes[names.COST_USD] = self.cost
        outcome = "fallback" if fallback_used else "ok"
        if error is not None:
            outcome = "error"
            kind = attributes[names.ERROR_TYPE] = error_type(error)
            span.set_status(Status(StatusCode.ERROR, kind))
        span.set_attributes(attributes)
        span.end()
        instruments.call_duration.record(
            duration,
            _outcome_attributes(self.selection.api_name, alias, self.selection.source, outcome),
            self.context,  # exemplars point at the call's trace
        )

    def add(self, usage: Usage | None, cost: float | None) -> None:
        if usage is not None:
            self.input_tokens = (self.input_tokens or 0) + usage.input_tokens
            if usage.output_tokens is not None:
                self.output_tokens = (self.output_tokens or 0) + usage.output_tokens
        if cost is not None:
            self.cost = cost if self.cost is None else self.cost + cost


class AttemptTelemetry:
    """One attempt: a CLIENT span under the call, current while the request is sent
    (so that the HTTP span nests under it)."""

    __slots__ = ("_start", "_token", "call", "capture", "context", "cost_of", "kwargs", "shape", "span")

    def __init__(
        self,
        call: CallTelemetry,
        alias: str,
        endpoint: Endpoint,
        server: tuple[str, int | None],
        kwargs: Mapping[str, Any],
        cost_of: CostFunction | None,
        capture: bool,
    ) -> None:
        call.attempts += 1
        self.call = call
        self.kwargs = kwargs
        self.cost_of = cost_of
        self.capture = capture
        self.shape = shape = _attempt_shape(call.operation, call.selection.api_name, alias, endpoint, *server)
        self._start = default_timer()
        self.span = tracer.start_span(shape.span_name, call.context, SpanKind.CLIENT, shape.span)
        self.context = trace.set_span_in_context(self.span)
        self._token: object | None = context.attach(self.context)

    def detach(self) -> None:
        if self._token is not None:
            context.detach(self._token)  # type: ignore[arg-type]
            self._token = None

    def elapsed(self) -> float:
        """Seconds since the request was sent."""
        return default_timer() - self._start

    def failed(self, error: BaseException) -> None:
        self._end({}, None, error)

    def response(self, response: Any) -> None:
        """A complete (non-streamed) response arrived: record it and end the attempt."""
        attributes: Attributes = {gen_ai.GEN_AI_RESPONSE_MODEL: response.model}
        if getattr(response, "id", None):
            attributes[gen_ai.GEN_AI_RESPONSE_ID] = response.id
        choices = getattr(response, "choices", None)
        if choices is not None:
            attributes[gen_ai.GEN_AI_RESPONSE_FINISH_REASONS] = [choice.finish_reason or "" for choice in choices]
            if self.capture:
                attributes[gen_ai.GEN_AI_OUTPUT_MESSAGES] = _output_messages(choices)
        usage = Usage.of(response.usage) if response.usage is not None else None
        self._end(attributes, usage, None)

    def stream_ended(self, state: StreamState, error: BaseException | None) -> None:
        """The stream is over (exhausted, failed, closed or collected): record what it carried."""
        attributes: Attributes = {}
        if state.response_id:
            attributes[gen_ai.GEN_AI_RESPONSE_ID] = state.response_id
        if state.response_model:
            attributes[gen_ai.GEN_AI_RESPONSE_MODEL] = state.response_model
        if state.finish_reasons:
            reasons = state.finish_reasons
            attributes[gen_ai.GEN_AI_RESPONSE_FINISH_REASONS] = [reasons[i] for i in sorted(reasons)]
        if state.time_to_first_chunk is not None:
            attributes[gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = state.time_to_first_chunk
            instruments.time_to_first_chunk.record(state.time_to_first_chunk, self.shape.metric)
        if self.capture and state.texts:
            attributes[gen_ai.GEN_AI_OUTPUT_MESSAGES] = _streamed_output_messages(state)
        usage = Usage.of(state.usage) if state.usage is not None else None
        self._end(attributes, usage, error)

    def _end(self, attributes: Attributes, usage: Usage | None, error: BaseException | None) -> None:
        duration = default_timer() - self._start
        span = self.span
        shape = self.shape
        attributes[names.ATTEMPT] = self.call.attempts
        for argument, key in _REQUEST_ATTRIBUTES.items():
            value = self.kwargs.get(argument)
            if value is not None:
                attributes[key] = _attribute_value(value)
        if self.capture and "messages" in self.kwargs:
            attributes[gen_ai.GEN_AI_INPUT_MESSAGES] = _input_messages(self.kwargs["messages"])
        cost = None
        if usage is not None:
            attributes[gen_ai.GEN_AI_USAGE_INPUT_TOKENS] = usage.input_tokens
            if usage.output_tokens is not None:
                attributes[gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS] = usage.output_tokens
            if usage.cached_input_tokens:
                attributes[gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = usage.cached_input_tokens
            if usage.reasoning_tokens:
                attributes[gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = usage.reasoning_tokens
            if self.cost_of is not None:
                cost = attributes[names.COST_USD] = self.cost_of(
                    usage.input_tokens, usage.output_tokens or 0, usage.cached_input_tokens
                )
        metric, input_tokens, output_tokens = shape.metric, shape.input_tokens, shape.output_tokens
        if error is not None:
            kind = attributes[names.ERROR_TYPE] = error_type(error)
            span.set_status(Status(StatusCode.ERROR, kind))
            metric, input_tokens, output_tokens = (
                {**metric, names.ERROR_TYPE: kind},
                {**input_tokens, names.ERROR_TYPE: kind},
                {**output_tokens, names.ERROR_TYPE: kind},
            )
        span.set_attributes(attributes)
        span.end()

        instruments.operation_duration.record(duration, metric, self.context)  # exemplar
        if usage is not None:
            instruments.token_usage.record(usage.input_tokens, input_tokens)
            if usage.output_tokens is not None:
                instruments.token_usage.record(usage.output_tokens, output_tokens)
            if cost is not None:
                instruments.cost.add(cost, shape.cost_attributes)
        self.call.add(usage, cost)


class StreamState:
    """What a stream carried so far, collected chunk by chunk."""

    __slots__ = ("finish_reasons", "response_id", "response_model", "texts", "time_to_first_chunk", "usage")

    def __init__(self) -> None:
        self.response_id: str | None = None
        self.response_model: str | None = None
        self.finish_reasons: dict[int, str] = {}
        self.texts: dict[int, list[str]] = {}  # filled only when content is captured
        self.usage: Any = None  # the provider's usage object, read on the telemetry thread
        self.time_to_first_chunk: float | None = None


def _attribute_value(value: Any) -> AttributeValue:
    if isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [str(item) for item in value]
    return str(value)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _input_messages(messages: Any) -> str:
    return json.dumps(
        [
            {"role": message.get("role"), "parts": [{"type": "text", "content": _text_of(message.get("content"))}]}
            for message in messages
            if isinstance(message, dict)
        ]
    )


def _output_messages(choices: Any) -> str:
    return json.dumps(
        [
            {
                "role": "assistant",
                "parts": [{"type": "text", "content": choice.message.content or ""}],
                "finish_reason": choice.finish_reason or "",
            }
            for choice in choices
        ]
    )


def _streamed_output_messages(state: StreamState) -> str:
    return json.dumps(
        [
            {
                "role": "assistant",
                "parts": [{"type": "text", "content": "".join(state.texts[index])}],
                "finish_reason": state.finish_reasons.get(index, ""),
            }
            for index in sorted(state.texts)
        ]
    )
