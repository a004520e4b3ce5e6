"""JSON bodies and SSE events in the exact shapes OpenAI sends.

The typed ``openai`` models parse these, so every field a real response carries
that client code or telemetry may read (ids, fingerprints, usage details,
``usage: null`` on stream chunks) is present.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
import uuid
from collections.abc import Sequence
from typing import Any

from ._faults import Fault

__all__ = [
    "SYSTEM_FINGERPRINT",
    "ChatReply",
    "azure_not_found_body",
    "chat_completion_body",
    "chat_stream_events",
    "embedding_vector",
    "embeddings_body",
    "error_body",
    "fault_error_body",
    "json_bytes",
    "new_id",
    "sse_event",
]

SYSTEM_FINGERPRINT = "fp_otel_llm_mock"

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
    """Everything one chat answer is made of, computed once for both response shapes."""

    __slots__ = ("completion_id", "created", "finish_reason", "model", "n", "usage", "words")

    def __init__(
        self,
        *,
        model: str,
        words: Sequence[str],
        finish_reason: str,
        n: int,
        prompt_tokens: int,
        cached_tokens: int,
    ) -> None:
        self.completion_id = new_id("chatcmpl-")
        self.created = int(time.time())
        self.model = model
        self.words = list(words)
        self.finish_reason = finish_reason
        self.n = n
        completion = len(self.words) * n
        self.usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    @property
    def content(self) -> str:
        return " ".join(self.words)


def chat_completion_body(reply: ChatReply) -> dict[str, Any]:
    """A non-streamed ``chat.completion``."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None, "annotations": []}
    return {
        "id": reply.completion_id,
        "object": "chat.completion",
        "created": reply.created,
        "model": reply.model,
        "choices": [
            {"index": i, "message": dict(message), "logprobs": None, "finish_reason": reply.finish_reason}
            for i in range(reply.n)
        ],
        "usage": reply.usage,
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


def sse_event(data: Any) -> bytes:
    """One server-sent event: ``data: <json>\\n\\n`` (or a raw string such as ``[DONE]``)."""
    payload = data.encode() if isinstance(data, str) else json_bytes(data)
    return b"data: " + payload + b"\n\n"


def chat_stream_events(reply: ChatReply, *, include_usage: bool) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of a stream, in order, without ``[DONE]``.

    Role chunk(s), one chunk per word and choice, the finish chunk(s), then with
    ``include_usage`` a usage-only chunk with ``"choices": []``; with
    ``include_usage`` every earlier chunk carries ``"usage": null``, as OpenAI does.
    """

    def chunk(choices: list[dict[str, Any]]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": reply.completion_id,
            "object": "chat.completion.chunk",
            "created": reply.created,
            "model": reply.model,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": choices,
        }
        if include_usage:
            body["usage"] = None
        return body

    def choice(index: int, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}

    events = [chunk([choice(i, {"role": "assistant", "content": "", "refusal": None})]) for i in range(reply.n)]
    for position, word in enumerate(reply.words):
        text = word if position == 0 else f" {word}"
        events.extend(chunk([choice(i, {"content": text})]) for i in range(reply.n))
    events.extend(chunk([choice(i, {}, reply.finish_reason)]) for i in range(reply.n))
    if include_usage:
        final = chunk([])
        final["usage"] = reply.usage
        events.append(final)
    return events


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
    *, model: str, texts: Sequence[str], dimensions: int, encoding_format: str, prompt_tokens: int
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
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
