"""The embedded server's Responses API, proven through real HTTP with the real SDK."""

from __future__ import annotations

import enum
import json
import time
from typing import Any

import httpx2
import openai
import pytest
from openai.types.responses import Response, ResponseInputParam, ResponseStreamEvent
from pydantic import BaseModel
from sdk_clients import API_VERSION, AUTH

from otel_llm.testing import Fault, MockLLMServer

STREAM_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    *["response.output_text.delta"] * 16,
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def respond(sdk: openai.OpenAI, text: str = "hello", model: str = "gpt-4.1-mini", **kwargs: Any) -> Response:
    response: Response = sdk.responses.create(model=model, input=text, **kwargs)
    return response


def usage_of(response: Response) -> tuple[int, int, int, int, int]:
    """(input, cached, output, reasoning, total) tokens."""
    usage = response.usage
    assert usage is not None
    return (
        usage.input_tokens,
        usage.input_tokens_details.cached_tokens,
        usage.output_tokens,
        usage.output_tokens_details.reasoning_tokens,
        usage.total_tokens,
    )


def sse_events(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    """The ``(event, data)`` pairs of a Responses event stream, checking its framing."""
    blocks = body.decode().split("\n\n")
    assert blocks[-1] == ""
    events = []
    for block in blocks[:-1]:
        event_line, data_line = block.split("\n")
        assert event_line.startswith("event: ") and data_line.startswith("data: ")
        events.append((event_line.removeprefix("event: "), json.loads(data_line.removeprefix("data: "))))
    return events


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Address(BaseModel):
    street: str
    zip_code: int


class Person(BaseModel):
    name: str
    age: int
    height: float
    member: bool
    favourite: Color
    home: Address
    previous_homes: list[Address]
    tags: list[str]
    nickname: str | None = None


EXPECTED_PERSON = Person(
    name="mock",
    age=0,
    height=0.0,
    member=True,
    favourite=Color.RED,
    home=Address(street="mock", zip_code=0),
    previous_homes=[Address(street="mock", zip_code=0)],
    tags=["mock"],
    nickname="mock",
)


# -- plain responses -------------------------------------------------------


def test_response_is_typed_with_documented_usage(client: openai.OpenAI, llm_server: MockLLMServer) -> None:
    response = respond(client, "Say hello to the world", instructions="You are terse.")

    assert isinstance(response, Response)
    assert response.id.startswith("resp_")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.model == "gpt-4.1-mini"
    assert response.created_at > 0
    assert (response.error, response.incomplete_details) == (None, None)
    [message] = response.output
    assert message.type == "message"
    assert message.id.startswith("msg_")
    assert (message.role, message.status) == ("assistant", "completed")
    [part] = message.content
    assert part.type == "output_text"
    assert (part.annotations, part.logprobs) == ([], [])
    expected = (["mock", "reply"] + ["Say", "hello", "to", "the", "world"] * 3)[: llm_server.reply_words]
    assert response.output_text.split() == expected
    # instructions (3 + 3 words) + the input as one user message (3 + 5), + 3 priming
    assert usage_of(response) == ((3 + 3) + (3 + 5) + 3, 0, 16, 0, 17 + 16)
    # the echoed settings, with OpenAI's defaults
    assert response.instructions == "You are terse."
    assert (response.max_output_tokens, response.previous_response_id) == (None, None)
    assert (response.temperature, response.top_p, response.parallel_tool_calls) == (1.0, 1.0, True)
    assert (response.tool_choice, response.tools, response.truncation) == ("auto", [], "disabled")
    assert (response.metadata, response.service_tier) == ({}, "default")
    assert response.to_dict()["store"] is True  # sent by OpenAI, untyped in the SDK
    assert response.text is not None and response.text.format is not None and response.text.format.type == "text"
    assert response.reasoning is not None and response.reasoning.effort is None


def test_response_body_passes_strict_validation(http: httpx2.Client) -> None:
    body = http.post("/v1/responses", headers=AUTH, json={"model": "m", "input": "hi", "temperature": 0.2}).json()
    response = Response.model_validate(body)  # validated, not constructed as the SDK does
    assert response.temperature == 0.2
    assert body["output"][0]["content"][0] == {
        "type": "output_text",
        "annotations": [],
        "logprobs": [],
        "text": response.output_text,
    }
    assert body["usage"] == {
        "input_tokens": 7,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 16,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 23,
    }


def test_item_list_input_counts_every_item(client: openai.OpenAI) -> None:
    items: ResponseInputParam = [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": [{"type": "input_text", "text": "What is two plus two"}]},
        {"role": "assistant", "content": "four"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "and three"}]},
    ]
    response = client.responses.create(model="gpt-4.1-mini", input=items, instructions="Answer in words")
    # instructions (3 + 3), then every item: (3 + 2) + (3 + 5) + (3 + 1) + (3 + 2), + 3 priming
    assert usage_of(response) == (6 + 5 + 8 + 4 + 5 + 3, 0, 16, 0, 31 + 16)
    assert response.output_text.startswith("mock reply and three and three")  # the last user item's words


def test_max_output_tokens_cuts_the_reply_as_incomplete() -> None:
    with (
        MockLLMServer(reply_words=20) as server,
        openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0) as sdk,
    ):
        cut = respond(sdk, max_output_tokens=16)
        not_cut = respond(sdk, max_output_tokens=20)
        with pytest.raises(openai.BadRequestError) as too_small:
            respond(sdk, max_output_tokens=15)  # OpenAI's minimum is 16

    assert cut.status == "incomplete"
    assert cut.incomplete_details is not None and cut.incomplete_details.reason == "max_output_tokens"
    assert cut.output[0].type == "message" and cut.output[0].status == "incomplete"
    assert cut.output_text.split() == ["mock", "reply", *["hello"] * 14]
    assert usage_of(cut) == (7, 0, 16, 0, 23)
    assert cut.max_output_tokens == 16
    assert (not_cut.status, not_cut.incomplete_details) == ("completed", None)
    assert too_small.value.param == "max_output_tokens"


def test_reasoning_effort_adds_reasoning_tokens(client: openai.OpenAI) -> None:
    def usage(effort: Any) -> tuple[int, int, int, int, int]:
        return usage_of(respond(client, reasoning={"effort": effort}))

    assert usage("low") == (7, 0, 16 + 8, 8, 7 + 24)
    assert usage("medium") == (7, 0, 16 + 16, 16, 7 + 32)
    assert usage("high") == (7, 0, 16 + 32, 32, 7 + 48)
    assert usage("minimal") == usage("none") == usage(None) == (7, 0, 16, 0, 23)
    assert respond(client, reasoning={"effort": "high"}).reasoning == openai.types.shared.Reasoning(
        effort="high", summary=None
    )
    with pytest.raises(openai.BadRequestError) as invalid:
        usage("extreme")
    assert invalid.value.param == "reasoning.effort"

    # the output limit covers reasoning first, then the visible reply
    short = respond(client, reasoning={"effort": "high"}, max_output_tokens=40)
    assert short.status == "incomplete"
    assert usage_of(short) == (7, 0, 40, 32, 47)
    assert short.output_text == "mock reply hello hello hello hello hello hello"  # 40 - 32 words
    spent = respond(client, reasoning={"effort": "high"}, max_output_tokens=16)
    assert usage_of(spent) == (7, 0, 16, 16, 23)
    assert spent.output_text == ""


def test_cached_tokens_on_the_second_identical_big_prompt(client: openai.OpenAI) -> None:
    long_prompt = " ".join(f"w{i}" for i in range(1100))  # 3 + 1100 + 3 = 1106 tokens

    def cached(**kwargs: Any) -> tuple[int, int]:
        input_tokens, cached_tokens, *_ = usage_of(respond(client, long_prompt, **kwargs))
        return input_tokens, cached_tokens

    assert cached() == (1106, 0)
    assert cached() == (1106, 1024)  # 128-token steps
    assert cached(instructions="Be brief") == (1106 + 5, 0)  # other messages
    assert cached(instructions="Be brief") == (1111, 1024)
    # the same messages answered by chat count as seen
    completion = client.chat.completions.create(
        model="gpt-4.1-mini", messages=[{"role": "user", "content": long_prompt}]
    )
    assert completion.usage is not None and completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 1024


# -- stored responses ------------------------------------------------------


def test_stored_responses_are_retrieved(client: openai.OpenAI, azure: openai.AzureOpenAI) -> None:
    response = respond(client, "remember this", metadata={"case": "retrieve"})
    retrieved = client.responses.retrieve(response.id)
    assert retrieved.to_dict() == response.to_dict()
    assert azure.responses.retrieve(response.id).output_text == response.output_text  # one store for both shapes

    streamed = list(client.responses.create(model="gpt-4.1-mini", input="streamed", stream=True))
    assert streamed[-1].type == "response.completed"
    assert client.responses.retrieve(streamed[-1].response.id).output_text == streamed[-1].response.output_text

    not_stored = respond(client, store=False)
    assert not_stored.to_dict()["store"] is False
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.retrieve(not_stored.id)
    assert missing.value.body == {
        "message": f"Response with id '{not_stored.id}' not found.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


def test_stored_responses_are_bounded() -> None:
    with (
        MockLLMServer(max_stored_responses=2) as server,
        openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0) as sdk,
    ):
        first, second, third = (respond(sdk, f"turn {i}").id for i in range(3))
        with pytest.raises(openai.NotFoundError):
            sdk.responses.retrieve(first)
        assert sdk.responses.retrieve(second).id == second
        assert sdk.responses.retrieve(third).id == third
        server.reset()
        with pytest.raises(openai.NotFoundError):
            sdk.responses.retrieve(third)
    with pytest.raises(ValueError):
        MockLLMServer(max_stored_responses=0)


def test_previous_response_id_continues_the_conversation(client: openai.OpenAI) -> None:
    first = respond(client, "hello there", instructions="Be kind always")
    second = respond(client, "and again", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    assert second.output_text.startswith("mock reply and again")
    # the previous input (3 + 2) and reply (3 + 16), not its instructions, then the new input (3 + 2), + 3
    assert usage_of(second)[0] == 5 + 19 + 5 + 3
    third = respond(client, "last", previous_response_id=second.id)
    assert usage_of(third)[0] == 5 + 19 + 5 + 19 + (3 + 1) + 3  # the whole chain


def test_unknown_previous_response_id_is_404(client: openai.OpenAI, http: httpx2.Client) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        respond(client, previous_response_id="resp_never_issued")
    assert (missing.value.code, missing.value.param) == ("previous_response_not_found", "previous_response_id")
    raw = http.post("/v1/responses", headers=AUTH, json={"model": "m", "input": "hi", "previous_response_id": "resp_x"})
    assert raw.status_code == 404
    assert raw.json() == {
        "error": {
            "message": "Previous response with id 'resp_x' not found.",
            "type": "invalid_request_error",
            "param": "previous_response_id",
            "code": "previous_response_not_found",
        }
    }
    unstored = respond(client, store=False)
    with pytest.raises(openai.NotFoundError):
        respond(client, previous_response_id=unstored.id)


# -- streaming -------------------------------------------------------------


def test_stream_events_are_ordered_and_numbered(client: openai.OpenAI) -> None:
    events: list[ResponseStreamEvent] = list(client.responses.create(model="gpt-4.1-mini", input="count", stream=True))
    assert [event.type for event in events] == STREAM_EVENTS
    assert [event.sequence_number for event in events] == list(range(len(STREAM_EVENTS)))

    created, in_progress, added, part_added, *deltas, text_done, part_done, item_done, completed = events
    assert created.type == "response.created" and in_progress.type == "response.in_progress"
    assert created.response.status == in_progress.response.status == "in_progress"
    assert created.response.output == [] and created.response.usage is None
    assert added.type == "response.output_item.added" and added.item.type == "message"
    assert (added.output_index, added.item.status, added.item.content) == (0, "in_progress", [])
    assert part_added.type == "response.content_part.added" and part_added.part.type == "output_text"
    assert part_added.part.text == ""
    message_id = added.item.id
    text = ""
    for delta in deltas:
        assert delta.type == "response.output_text.delta"
        assert (delta.item_id, delta.output_index, delta.content_index, delta.logprobs) == (message_id, 0, 0, [])
        text += delta.delta
    assert text == "mock reply " + " ".join(["count"] * 14)
    assert text_done.type == "response.output_text.done" and text_done.text == text
    assert part_done.type == "response.content_part.done" and part_done.part.type == "output_text"
    assert part_done.part.text == text
    assert item_done.type == "response.output_item.done" and item_done.item.type == "message"
    assert (item_done.item.id, item_done.item.status) == (message_id, "completed")
    assert completed.type == "response.completed"
    assert completed.response.id == created.response.id
    assert completed.response.output_text == text
    assert usage_of(completed.response) == (7, 0, 16, 0, 23)


def test_stream_wire_framing_has_event_lines_and_no_done(http: httpx2.Client) -> None:
    body = {"model": "m", "input": "hi", "stream": True}
    with http.stream("POST", "/v1/responses", json=body, headers=AUTH) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["transfer-encoding"] == "chunked"
        data = response.read()
    events = sse_events(data)
    assert [name for name, _ in events] == STREAM_EVENTS
    assert all(payload["type"] == name for name, payload in events)
    assert b"[DONE]" not in data
    assert data.startswith(b'event: response.created\ndata: {"type":"response.created","sequence_number":0,')


def test_stream_helper_gives_the_final_response(client: openai.OpenAI) -> None:
    with client.responses.stream(model="gpt-4.1-mini", input="stream me", reasoning={"effort": "low"}) as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert len(deltas) == 16
    assert final.output_text == "".join(deltas)
    assert final.status == "completed"
    assert usage_of(final) == (3 + 2 + 3, 0, 16 + 8, 8, 8 + 24)


def test_incomplete_stream_ends_with_response_incomplete(client: openai.OpenAI) -> None:
    events = list(
        client.responses.create(
            model="gpt-4.1-mini", input="hi", stream=True, reasoning={"effort": "high"}, max_output_tokens=35
        )
    )
    assert events[-1].type == "response.incomplete"
    assert len([e for e in events if e.type == "response.output_text.delta"]) == 3
    assert events[-1].response.incomplete_details is not None
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"
    assert usage_of(events[-1].response) == (7, 0, 35, 32, 42)
    item_done = events[-2]
    assert item_done.type == "response.output_item.done" and item_done.item.type == "message"
    assert item_done.item.status == "incomplete"

    with client.responses.stream(
        model="gpt-4.1-mini", input="hi", max_output_tokens=16, reasoning={"effort": "low"}
    ) as stream:
        with pytest.raises(RuntimeError, match=r"response\.completed"):  # SDK behaviour: only completed is final
            stream.get_final_response()


def test_sync_stream_reuses_its_connection(client: openai.OpenAI, llm_server: MockLLMServer) -> None:
    """Unlike a chat stream (the SDK stops at ``[DONE]`` before the body's end), a Responses
    stream is read to the body's end, so the sync SDK reuses the connection."""
    list(client.responses.create(model="m", input="hi", stream=True))
    respond(client, model="m")
    assert len({request.connection for request in llm_server.requests}) == 1


# -- Azure shape -----------------------------------------------------------


def test_azure_responses_use_the_v1_style_path_with_the_deployment_as_model(
    azure: openai.AzureOpenAI, llm_server: MockLLMServer
) -> None:
    response = azure.responses.create(model="my-deployment", input="hi")
    assert response.model == "my-deployment"
    events = list(azure.responses.create(model="my-deployment", input="hi", stream=True))
    assert [e.type for e in events] == STREAM_EVENTS
    assert azure.responses.retrieve(response.id).id == response.id

    create, stream, retrieve = llm_server.requests
    assert (create.method, create.path, create.query) == ("POST", "/openai/responses", {"api-version": API_VERSION})
    assert (create.shape, create.endpoint, create.model) == ("azure", "responses", "my-deployment")
    assert create.headers["api-key"] == "test-key"
    assert stream.body is not None and stream.body["stream"] is True
    assert (retrieve.method, retrieve.path, retrieve.endpoint) == (
        "GET",
        f"/openai/responses/{response.id}",
        "responses",
    )
    assert retrieve.model is None


def test_azure_deployment_client_sends_responses_to_the_same_path(llm_server: MockLLMServer) -> None:
    with openai.AzureOpenAI(
        azure_endpoint=llm_server.azure_endpoint,
        azure_deployment="dep",
        api_version=API_VERSION,
        api_key="test-key",
        max_retries=0,
    ) as sdk:
        assert sdk.responses.create(model="dep", input="hi").status == "completed"
    [request] = llm_server.requests
    assert (request.path, request.model) == ("/openai/responses", "dep")


def test_responses_routes_check_credentials_and_api_version(http: httpx2.Client) -> None:
    body = {"model": "m", "input": "hi"}
    assert http.post("/v1/responses", json=body).status_code == 401
    assert http.post("/openai/responses", json=body, headers={"api-key": "k"}).status_code == 404  # no api-version
    assert http.get("/v1/responses", headers=AUTH).status_code == 405
    assert http.post("/v1/responses", json={"model": "m", "input": 3}, headers=AUTH).json()["error"]["param"] == (
        "input"
    )
    assert http.get("/v1/responses/resp_x?stream=true", headers=AUTH).status_code == 400


# -- async -----------------------------------------------------------------


@pytest.mark.anyio
async def test_async_create_stream_and_parse(llm_server: MockLLMServer) -> None:
    async with openai.AsyncOpenAI(base_url=llm_server.base_url, api_key="test-key", max_retries=0) as sdk:
        response = await sdk.responses.create(model="m", input="async hello")
        assert usage_of(response) == (8, 0, 16, 0, 24)
        stream = await sdk.responses.create(model="m", input="async hello", stream=True)
        assert [event.type async for event in stream] == STREAM_EVENTS
        async with sdk.responses.stream(model="m", input="async hello") as helper:
            final = await helper.get_final_response()
        assert final.output_text == response.output_text
        parsed = await sdk.responses.parse(model="m", input="who", text_format=Person)
        assert parsed.output_parsed == EXPECTED_PERSON
        assert (await sdk.responses.retrieve(response.id)).id == response.id
    assert len({request.connection for request in llm_server.requests}) == 1  # streams drained, connection reused


# -- structured outputs ----------------------------------------------------


def test_responses_parse_returns_the_pydantic_model(client: openai.OpenAI, llm_server: MockLLMServer) -> None:
    parsed = client.responses.parse(model="gpt-4.1-mini", input="Describe a person", text_format=Person)
    assert parsed.output_parsed == EXPECTED_PERSON
    request = llm_server.requests[-1].body
    assert request is not None and request["text"]["format"]["type"] == "json_schema"
    assert parsed.text is not None and parsed.text.format is not None and parsed.text.format.type == "json_schema"
    # a JSON reply counts its whitespace-separated words
    assert usage_of(parsed)[2] == len(parsed.output_text.split())
    assert parsed.output_text == json.dumps(EXPECTED_PERSON.model_dump(mode="json"))


def test_structured_stream_sends_the_json_in_deltas(client: openai.OpenAI) -> None:
    with client.responses.stream(model="gpt-4.1-mini", input="Describe", text_format=Person) as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert len(deltas) == len(final.output_text.split()) > 1
    assert "".join(deltas) == final.output_text
    assert final.output_parsed == EXPECTED_PERSON


def test_json_schema_features_give_a_valid_document(http: httpx2.Client) -> None:
    schema = {
        "type": "object",
        "properties": {
            "kind": {"const": "event"},
            "level": {"enum": ["in progress", "done"]},
            "when": {"type": "string", "format": "date-time"},
            "code": {"type": "string", "minLength": 6, "maxLength": 8},
            "count": {"type": "integer", "exclusiveMinimum": 0},
            "ratio": {"type": "number", "minimum": 0.5, "maximum": 1},
            "either": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/Leaf"}]},
            "tree": {"$ref": "#/$defs/Node"},
            "both": {"allOf": [{"$ref": "#/$defs/Leaf"}, {"properties": {"extra": {"type": "boolean"}}}]},
            "nothing": {"type": "null"},
            "listed": {"type": ["array", "null"], "items": {"type": "integer"}, "minItems": 2},
        },
        "required": ["kind", "level", "when", "code", "count", "ratio", "either", "tree", "both", "nothing", "listed"],
        "additionalProperties": False,
        "$defs": {
            "Leaf": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
            "Node": {
                "type": "object",
                "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}},
                "required": ["children"],
            },
        },
    }
    text = {"format": {"type": "json_schema", "name": "Everything", "schema": schema, "strict": True}}
    body = http.post("/v1/responses", headers=AUTH, json={"model": "m", "input": "go", "text": text}).json()
    document = json.loads(body["output"][0]["content"][0]["text"])
    tree: dict[str, Any] = document.pop("tree")
    assert document == {
        "kind": "event",
        "level": "in progress",
        "when": "2025-01-01T00:00:00Z",
        "code": "mockkk",
        "count": 1,
        "ratio": 0.5,
        "either": {"name": "mock"},
        "both": {"name": "mock", "extra": True},
        "nothing": None,
        "listed": [0, 0],
    }
    depth = 0
    while tree["children"]:  # a recursive schema ends in an empty array
        [tree] = tree["children"]
        depth += 1
    assert 1 < depth < 16
    assert body["usage"]["output_tokens"] == len(body["output"][0]["content"][0]["text"].split())

    unresolvable = {"format": {"type": "json_schema", "name": "Bad", "schema": {"$ref": "#/$defs/Missing"}}}
    response = http.post("/v1/responses", headers=AUTH, json={"model": "m", "input": "go", "text": unresolvable})
    assert response.status_code == 400 and response.json()["error"]["param"] == "text.format"
    nameless = {"format": {"type": "json_schema", "schema": {"type": "object"}}}
    response = http.post("/v1/responses", headers=AUTH, json={"model": "m", "input": "go", "text": nameless})
    assert response.status_code == 400 and "name" in response.json()["error"]["message"]


def test_json_object_format_needs_the_word_json(client: openai.OpenAI) -> None:
    json_mode: Any = {"format": {"type": "json_object"}}
    response = client.responses.create(model="m", input="Answer in JSON please", text=json_mode)
    words = ["mock", "reply", *(["Answer", "in", "JSON", "please"] * 4)[:14]]
    assert json.loads(response.output_text) == {"reply": " ".join(words)}
    assert usage_of(response)[2] == 16 + 1  # the reply's words, the key ``{"reply":`` one more
    with pytest.raises(openai.BadRequestError) as no_json:
        client.responses.create(model="m", input="Answer please", text=json_mode)
    assert no_json.value.param == "input"
    # instructions count as input
    assert client.responses.create(model="m", input="Answer", instructions="Use json", text=json_mode).output_text


# -- faults ----------------------------------------------------------------


def test_status_faults_apply_to_responses(client: openai.OpenAI, llm_server: MockLLMServer) -> None:
    llm_server.add_faults("gpt-4.1-mini", Fault.status(429, retry_after=2), Fault.status(503))
    with pytest.raises(openai.RateLimitError) as limited:
        respond(client)
    assert limited.value.response.headers["retry-after"] == "2"
    with pytest.raises(openai.InternalServerError):
        client.responses.create(model="gpt-4.1-mini", input="hi", stream=True)
    assert respond(client).status == "completed"


def test_delay_and_drop_apply_to_responses(client: openai.OpenAI, llm_server: MockLLMServer) -> None:
    llm_server.add_faults("gpt-4.1-mini", Fault.delay(0.3), Fault.delay(0.1), Fault.drop(), Fault.cut_stream(2))
    with pytest.raises(openai.APITimeoutError):
        respond(client.with_options(timeout=0.05))
    started = time.perf_counter()
    assert respond(client).status == "completed"
    assert time.perf_counter() - started >= 0.1
    with pytest.raises(openai.APIConnectionError) as dropped:
        respond(client)
    assert not isinstance(dropped.value, openai.APITimeoutError)
    with pytest.raises(openai.APIConnectionError):  # nothing to cut in a plain response: dropped
        respond(client)


def test_malformed_responses_raise_json_decode_error(
    client: openai.OpenAI, http: httpx2.Client, llm_server: MockLLMServer
) -> None:
    llm_server.add_faults("gpt-4.1-mini", *[Fault.malformed()] * 4)
    with pytest.raises(json.JSONDecodeError):
        respond(client)
    stream = client.responses.create(model="gpt-4.1-mini", input="hi", stream=True)
    with pytest.raises(json.JSONDecodeError):
        next(iter(stream))
    stream.close()

    plain = http.post("/v1/responses", headers=AUTH, json={"model": "gpt-4.1-mini", "input": "hi"})
    assert plain.status_code == 200 and plain.headers["content-type"] == "application/json"
    assert plain.content.startswith(b'{"id":"resp_malformed","object":"response"')
    streamed = http.post("/v1/responses", headers=AUTH, json={"model": "gpt-4.1-mini", "input": "hi", "stream": True})
    assert streamed.content.startswith(b"event: response.created\ndata: {")
    assert b"[DONE]" not in streamed.content
    with pytest.raises(ValueError):
        json.loads(streamed.content.split(b"data: ", 1)[1])


@pytest.mark.parametrize(
    ("after_chunks", "received"),
    [
        (0, ["response.created", "response.in_progress"]),  # before the first output event
        (
            3,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                *["response.output_text.delta"] * 3,
            ],
        ),
        (99, STREAM_EVENTS[:-4]),  # every delta, nothing after them
    ],
)
@pytest.mark.parametrize("clean", [False, True])
def test_cut_stream_on_responses(
    client: openai.OpenAI, llm_server: MockLLMServer, after_chunks: int, received: list[str], clean: bool
) -> None:
    llm_server.add_faults("gpt-4.1-mini", Fault.cut_stream(after_chunks, clean=clean))
    events: list[ResponseStreamEvent] = []
    stream = client.responses.create(model="gpt-4.1-mini", input="hi", stream=True)
    if clean:
        events.extend(stream)  # the body ends properly: only the missing terminal event tells
    else:
        with pytest.raises(openai.APIConnectionError) as err:
            events.extend(stream)
        assert isinstance(err.value.__cause__, httpx2.RemoteProtocolError)  # incomplete chunked read
    assert [event.type for event in events] == received
    assert [event.sequence_number for event in events] == list(range(len(received)))


def test_cut_stream_leaves_the_stream_helper_without_a_final_response(
    client: openai.OpenAI, llm_server: MockLLMServer
) -> None:
    llm_server.add_faults("gpt-4.1-mini", Fault.cut_stream(5, clean=True))
    with client.responses.stream(model="gpt-4.1-mini", input="hi") as stream:
        text = "".join(event.delta for event in stream if event.type == "response.output_text.delta")
        with pytest.raises(RuntimeError):
            stream.get_final_response()
    assert text == "mock reply hi hi hi"


@pytest.mark.anyio
async def test_async_cut_stream_before_the_first_output_event(llm_server: MockLLMServer) -> None:
    llm_server.add_faults("m", Fault.cut_stream(0))
    async with openai.AsyncOpenAI(base_url=llm_server.base_url, api_key="test-key", max_retries=0) as sdk:
        stream = await sdk.responses.create(model="m", input="hi", stream=True)
        received: list[str] = []
        with pytest.raises(openai.APIConnectionError):
            async for event in stream:
                received.append(event.type)
    assert received == ["response.created", "response.in_progress"]
