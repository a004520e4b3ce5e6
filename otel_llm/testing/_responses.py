"""JSON bodies, SSE events and headers in the exact shapes OpenAI sends.

The typed ``openai`` models parse these, so every field a real response carries
that client code or telemetry may read (ids, fingerprints, usage details,
``usage: null`` on stream chunks, the echoed settings of a Responses ``response``,
``x-ratelimit-*`` headers) is present.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
import uuid
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from ._faults import Fault
from ._quirks import Quirk

__all__ = [
    "LISTED_MODELS",
    "RATE_LIMIT_REQUESTS",
    "RATE_LIMIT_TOKENS",
    "SYSTEM_FINGERPRINT",
    "ChatReply",
    "ResponseReply",
    "azure_not_found_body",
    "chat_completion_body",
    "chat_stream_events",
    "embedding_vector",
    "embeddings_body",
    "empty_page_body",
    "error_body",
    "fault_error_body",
    "json_bytes",
    "model_body",
    "model_list_body",
    "new_id",
    "rate_limit_headers",
    "response_body",
    "response_settings",
    "response_stream_events",
    "sse_event",
]

SYSTEM_FINGERPRINT = "fp_otel_llm_mock"
LISTED_MODELS = ("gpt-4.1-mini", "gpt-4.1", "text-embedding-3-small")
"""Models ``GET /v1/models`` always lists, before those the server has answered for."""
RATE_LIMIT_REQUESTS = 10_000
"""Requests per minute in the ``x-ratelimit-*`` headers, per model."""
RATE_LIMIT_TOKENS = 10_000_000
"""Tokens per minute in the ``x-ratelimit-*`` headers, per model."""
_MODEL_CREATED = 1_700_000_000

# HTTP status -> (error.type, error.code, default message), as OpenAI answers them.
_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request (mock fault)."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided (mock fault)."),
    403: (
        "invalid_request_error",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported (mock fault).",
    ),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model does not exist or you do not have access to it (mock fault).",
    ),
    408: ("server_error", "timeout", "Request timed out (mock fault)."),
    409: ("invalid_request_error", "conflict", "Conflict (mock fault)."),
    422: ("invalid_request_error", None, "Unprocessable request (mock fault)."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests (mock fault). Please try again later."),
    500: ("server_error", None, "The server had an error while processing your request (mock fault)."),
    502: ("server_error", None, "Bad gateway (mock fault)."),
    503: ("server_error", None, "The server is overloaded or not ready yet (mock fault)."),
    504: ("server_error", "timeout", "Gateway timeout (mock fault)."),
}
_CONTENT_FILTER_MESSAGE = (
    "The response was filtered due to the prompt triggering the content management policy (mock fault)."
)
_HARM_CATEGORIES = ("hate", "self_harm", "sexual", "violence")
_FILTERED_CATEGORY = "violence"
"""The category Azure's output filter flags under ``Quirk.CONTENT_FILTERED``."""


def json_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON, as providers send it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def new_id(prefix: str) -> str:
    """A unique provider-style id such as ``chatcmpl-<hex>``."""
    return f"{prefix}{uuid.uuid4().hex}"


def error_body(message: str, type_: str | None, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error envelope: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def azure_not_found_body() -> dict[str, Any]:
    """What Azure OpenAI answers for an unknown path or a missing ``api-version``."""
    return {"error": {"code": "404", "message": "Resource not found"}}


def fault_error_body(fault: Fault) -> dict[str, Any]:
    """The error body of a ``Fault.status``: realistic defaults, overridable per fault."""
    status = fault.status_code or 500
    type_, code, message = _ERRORS.get(
        status,
        ("server_error", None, f"Mock fault {status}.")
        if status >= 500
        else ("invalid_request_error", None, f"Mock fault {status}."),
    )
    param = None
    if fault.error_code == "content_filter":
        message, param = _CONTENT_FILTER_MESSAGE, "prompt"
    return error_body(
        fault.message if fault.message is not None else message,
        fault.error_type if fault.error_type is not None else type_,
        fault.error_code if fault.error_code is not None else code,
        param,
    )


class ChatReply:
    """Everything one chat answer is made of, computed once for both response shapes.

    Under ``Quirk.CONTENT_FILTERED`` the filter withholds the whole reply: no tokens, none
    counted, ``finish_reason="content_filter"``; ``Quirk.NO_FINISH_REASON`` nulls any finish reason.
    """

    __slots__ = ("completion_id", "created", "finish_reason", "model", "n", "quirks", "tokens", "usage")

    def __init__(
        self,
        *,
        model: str,
        tokens: Sequence[str],
        finish_reason: str,
        n: int,
        prompt_tokens: int,
        cached_tokens: int,
        reasoning_tokens: int = 0,
        quirks: Collection[Quirk] = (),
    ) -> None:
        self.completion_id = new_id("chatcmpl-")
        self.created = int(time.time())
        self.model = model
        self.quirks = frozenset(quirks)
        if self.filtered:
            tokens, reasoning_tokens, finish_reason = (), 0, "content_filter"
        self.tokens = list(tokens)
        """The reply's tokens, each with its leading whitespace: the stream deltas."""
        self.finish_reason = None if Quirk.NO_FINISH_REASON in self.quirks else finish_reason
        self.n = n
        completion = (len(self.tokens) + reasoning_tokens) * n
        self.usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reasoning_tokens * n,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    @property
    def content(self) -> str:
        return "".join(self.tokens)

    @property
    def filtered(self) -> bool:
        """Whether Azure's output filter withheld the reply (``Quirk.CONTENT_FILTERED``)."""
        return Quirk.CONTENT_FILTERED in self.quirks


def chat_completion_body(reply: ChatReply) -> dict[str, Any]:
    """A non-streamed ``chat.completion``; a filtered reply's choices have no ``message``."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None, "annotations": []}
    choices: list[dict[str, Any]] = []
    for index in range(reply.n):
        choice: dict[str, Any] = {"index": index, "logprobs": None, "finish_reason": reply.finish_reason}
        if reply.filtered:
            choice["content_filter_results"] = _content_filter_results(_FILTERED_CATEGORY)
        else:
            choice["message"] = dict(message)
        choices.append(choice)
    body = {
        "id": reply.completion_id,
        "object": "chat.completion",
        "created": reply.created,
        **_model_key(reply.model, reply.quirks),
        "choices": choices,
        "usage": reply.usage,
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    if Quirk.PROMPT_FILTER_CHUNK in reply.quirks:
        body["prompt_filter_results"] = _prompt_filter_results()
    return body


def _model_key(model: str, quirks: Collection[Quirk]) -> dict[str, str]:
    """A body's ``model`` entry: none under ``Quirk.NO_MODEL``."""
    return {} if Quirk.NO_MODEL in quirks else {"model": model}


def _content_filter_results(filtered: str | None = None) -> dict[str, Any]:
    """Azure's verdict per harm category: all safe, but the ``filtered`` category when given."""
    return {
        category: {"filtered": True, "severity": "high"}
        if category == filtered
        else {"filtered": False, "severity": "safe"}
        for category in _HARM_CATEGORIES
    }


def _prompt_filter_results() -> list[dict[str, Any]]:
    """Azure's verdict on the prompt (a single one, index 0): nothing filtered."""
    return [{"prompt_index": 0, "content_filter_results": _content_filter_results()}]


def sse_event(data: Any, event: str | None = None) -> bytes:
    """One server-sent event: ``data: <json>\\n\\n`` (or a raw string such as ``[DONE]``).

    With ``event`` it is preceded by an ``event: <name>`` line, as in Responses streams.
    """
    payload = data.encode() if isinstance(data, str) else json_bytes(data)
    head = b"" if event is None else b"event: " + event.encode() + b"\n"
    return head + b"data: " + payload + b"\n\n"


def chat_stream_events(reply: ChatReply, *, include_usage: bool) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of a stream, in order, without ``[DONE]``.

    Role chunk(s), one chunk per token and choice, the finish chunk(s), then with
    ``include_usage`` a usage-only chunk with ``"choices": []``; with
    ``include_usage`` every earlier chunk carries ``"usage": null``, as OpenAI does.
    ``Quirk.PROMPT_FILTER_CHUNK`` puts Azure's prompt filter chunk first;
    ``Quirk.USAGE_IN_EMPTY_CHOICE`` gives the usage chunk one empty choice.
    """

    def chunk(choices: list[dict[str, Any]]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": reply.completion_id,
            "object": "chat.completion.chunk",
            "created": reply.created,
            **_model_key(reply.model, reply.quirks),
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": choices,
        }
        if include_usage:
            body["usage"] = None
        return body

    def choice(index: int, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}

    def finish(index: int) -> dict[str, Any]:
        ending = choice(index, {}, reply.finish_reason)
        if reply.filtered:
            ending["content_filter_results"] = _content_filter_results(_FILTERED_CATEGORY)
        return ending

    events = [_prompt_filter_chunk(reply.quirks)] if Quirk.PROMPT_FILTER_CHUNK in reply.quirks else []
    events.extend(chunk([choice(i, {"role": "assistant", "content": "", "refusal": None})]) for i in range(reply.n))
    for token in reply.tokens:
        events.extend(chunk([choice(i, {"content": token})]) for i in range(reply.n))
    events.extend(chunk([finish(i)]) for i in range(reply.n))
    if include_usage:
        final = chunk([{"delta": {}, "index": 0}] if Quirk.USAGE_IN_EMPTY_CHOICE in reply.quirks else [])
        final["usage"] = reply.usage
        events.append(final)
    return events


def _prompt_filter_chunk(quirks: Collection[Quirk]) -> dict[str, Any]:
    """The chunk Azure streams first: only the prompt's filter results, blank identity fields."""
    return {
        "choices": [],
        "created": 0,
        "id": "",
        **_model_key("", quirks),
        "object": "",
        "prompt_filter_results": _prompt_filter_results(),
    }


def embedding_vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector for ``text``, exactly representable as float32.

    Derived from SHA-256 so equal texts get equal vectors and different texts
    different ones; rounded through float32 so the ``float`` and ``base64``
    encodings decode to identical numbers.
    """
    raw: list[float] = []
    block = 0
    seed = text.encode()
    while len(raw) < dimensions:
        digest = hashlib.sha256(block.to_bytes(4, "little") + seed).digest()
        raw.extend(value / 2**31 - 1.0 for value in struct.unpack("<8I", digest))
        block += 1
    del raw[dimensions:]
    norm = sum(v * v for v in raw) ** 0.5 or 1.0
    return list(struct.unpack(f"<{dimensions}f", struct.pack(f"<{dimensions}f", *(v / norm for v in raw))))


def embeddings_body(
    *,
    model: str,
    texts: Sequence[str],
    dimensions: int,
    encoding_format: str,
    prompt_tokens: int,
    quirks: Collection[Quirk] = (),
) -> dict[str, Any]:
    """A ``list`` of embeddings, floats or base64 of little-endian float32."""
    data: list[dict[str, Any]] = []
    for index, text in enumerate(texts):
        vector = embedding_vector(text, dimensions)
        encoded: list[float] | str = (
            base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
            if encoding_format == "base64"
            else vector
        )
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    return {
        "object": "list",
        "data": data,
        **_model_key(model, quirks),
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


class ResponseReply:
    """Everything one Responses answer is made of, computed once for the body, the stream and the store."""

    __slots__ = (
        "created_at",
        "incomplete",
        "message_id",
        "model",
        "quirks",
        "response_id",
        "settings",
        "tokens",
        "usage",
    )

    def __init__(
        self,
        *,
        model: str,
        tokens: Sequence[str],
        incomplete: bool,
        prompt_tokens: int,
        cached_tokens: int,
        reasoning_tokens: int,
        settings: Mapping[str, Any],
        quirks: Collection[Quirk] = (),
    ) -> None:
        self.response_id = new_id("resp_")
        self.message_id = new_id("msg_")
        self.created_at = int(time.time())
        self.model = model
        self.quirks = frozenset(quirks)
        """The quirks of its model: only ``Quirk.NO_MODEL`` shapes a Responses answer."""
        self.tokens = list(tokens)
        """The reply's tokens, each with its leading whitespace: the stream deltas."""
        self.incomplete = incomplete
        """Whether ``max_output_tokens`` cut the reply."""
        self.settings = dict(settings)
        """The request parameters the ``response`` object echoes (see :func:`response_settings`)."""
        output = len(self.tokens) + reasoning_tokens
        self.usage: dict[str, Any] = {
            "input_tokens": prompt_tokens,
            "input_tokens_details": {"cached_tokens": cached_tokens, "cache_write_tokens": 0},
            "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
            "total_tokens": prompt_tokens + output,
        }

    @property
    def text(self) -> str:
        return "".join(self.tokens)


def response_settings(body: Mapping[str, Any]) -> dict[str, Any]:
    """The request parameters a ``response`` object echoes, with OpenAI's defaults for those not sent."""

    def given(name: str, default: Any) -> Any:
        value = body.get(name)
        return default if value is None else value

    reasoning = given("reasoning", {})
    text = given("text", {})
    return {
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "parallel_tool_calls": given("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "safety_identifier": body.get("safety_identifier"),
        "service_tier": given("service_tier", "auto"),
        "store": given("store", True),
        "temperature": given("temperature", 1.0),
        "text": {"format": text.get("format") or {"type": "text"}, "verbosity": text.get("verbosity") or "medium"},
        "tool_choice": given("tool_choice", "auto"),
        "tools": given("tools", []),
        "top_logprobs": given("top_logprobs", 0),
        "top_p": given("top_p", 1.0),
        "truncation": given("truncation", "disabled"),
        "user": body.get("user"),
        "metadata": given("metadata", {}),
    }


def response_body(reply: ResponseReply, *, final: bool = True) -> dict[str, Any]:
    """A ``response`` object: final (completed or incomplete, with output and usage), else the
    in-progress snapshot a stream starts with (no output, ``usage: null``).

    The final one reports the tier that served it (``default`` for ``auto``), as OpenAI does.
    """
    status = ("incomplete" if reply.incomplete else "completed") if final else "in_progress"
    settings = dict(reply.settings)
    if final and settings["service_tier"] == "auto":
        settings["service_tier"] = "default"
    return {
        "id": reply.response_id,
        "object": "response",
        "created_at": reply.created_at,
        "status": status,
        "background": False,
        "completed_at": reply.created_at if status == "completed" else None,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        **_model_key(reply.model, reply.quirks),
        "output": [_message_item(reply, status, [_text_part(reply.text)])] if final else [],
        **settings,
        "usage": reply.usage if final else None,
    }


def response_stream_events(reply: ResponseReply) -> list[dict[str, Any]]:
    """The events of a Responses stream, in order, each with its ``type`` and ``sequence_number``.

    ``response.created`` and ``response.in_progress`` (the in-progress snapshot),
    ``response.output_item.added`` and ``response.content_part.added``, one
    ``response.output_text.delta`` per token, ``response.output_text.done``,
    ``response.content_part.done``, ``response.output_item.done``, then
    ``response.completed`` (or ``response.incomplete``) with the final response.
    """
    events: list[dict[str, Any]] = []

    def event(type_: str, **fields: Any) -> None:
        events.append({"type": type_, "sequence_number": len(events), **fields})

    snapshot = response_body(reply, final=False)
    final = response_body(reply)
    part = {"item_id": reply.message_id, "output_index": 0, "content_index": 0}
    event("response.created", response=snapshot)
    event("response.in_progress", response=snapshot)
    event("response.output_item.added", output_index=0, item=_message_item(reply, "in_progress", []))
    event("response.content_part.added", **part, part=_text_part(""))
    for token in reply.tokens:
        event("response.output_text.delta", **part, delta=token, logprobs=[])
    event("response.output_text.done", **part, text=reply.text, logprobs=[])
    event("response.content_part.done", **part, part=_text_part(reply.text))
    event("response.output_item.done", output_index=0, item=final["output"][0])
    event(f"response.{final['status']}", response=final)
    return events


def _message_item(reply: ResponseReply, status: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": reply.message_id, "type": "message", "status": status, "content": content, "role": "assistant"}


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def model_body(model: str) -> dict[str, Any]:
    """One ``model`` object of ``GET /v1/models``."""
    return {"id": model, "object": "model", "created": _MODEL_CREATED, "owned_by": "system"}


def model_list_body(models: Sequence[str]) -> dict[str, Any]:
    """``GET /v1/models``: a plain (unpaginated) ``list``."""
    return {"object": "list", "data": [model_body(model) for model in models]}


def empty_page_body() -> dict[str, Any]:
    """An empty cursor page, as ``GET /v1/files`` or ``/v1/batches`` answer with nothing stored."""
    return {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}


def rate_limit_headers(requests_used: int, tokens_used: int) -> dict[str, str]:
    """OpenAI's ``x-ratelimit-*`` headers for a one-minute window with this much used.

    The window refills linearly, so the resets are the time to win back what was used.
    """
    requests_used = min(requests_used, RATE_LIMIT_REQUESTS)
    tokens_used = min(tokens_used, RATE_LIMIT_TOKENS)
    return {
        "x-ratelimit-limit-requests": str(RATE_LIMIT_REQUESTS),
        "x-ratelimit-limit-tokens": str(RATE_LIMIT_TOKENS),
        "x-ratelimit-remaining-requests": str(RATE_LIMIT_REQUESTS - requests_used),
        "x-ratelimit-remaining-tokens": str(RATE_LIMIT_TOKENS - tokens_used),
        "x-ratelimit-reset-requests": _duration(60 * requests_used / RATE_LIMIT_REQUESTS),
        "x-ratelimit-reset-tokens": _duration(60 * tokens_used / RATE_LIMIT_TOKENS),
    }


def _duration(seconds: float) -> str:
    """A duration as OpenAI writes its reset headers (Go style): ``0s``, ``6ms``, ``1.5s``, ``1m0s``."""
    milliseconds = round(seconds * 1000)
    if milliseconds == 0:
        return "0s"
    if milliseconds < 1000:
        return f"{milliseconds}ms"
    minutes, rest = divmod(milliseconds, 60_000)
    return f"{minutes}m{rest / 1000:g}s" if minutes else f"{rest / 1000:g}s"
