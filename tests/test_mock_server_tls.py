"""HTTPS to the embedded server, with a certificate of a private CA made here (trustme).

otel-llm's clients trust such a CA through ``SSL_CERT_FILE`` (httpx2 reads it when a
client is built), as the raw SDK's do; over TLS a connection thrown away costs a
handshake, which is what otel-llm's drained sync streams save.
"""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import trustme
from helpers import KEY

from otel_llm import LLMSettings, close_clients, get_async_llm_client_smart, get_llm_client_smart
from otel_llm.cli import main
from otel_llm.testing import Fault, MockLLMServer

MESSAGES = [{"role": "user", "content": "Extract the keywords of this job description."}]
STREAMS = 5


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_server(ca: trustme.CA) -> Iterator[MockLLMServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    with MockLLMServer(tls=context) as server:
        yield server
    close_clients()  # no client built with this test's trust outlives it


@pytest.fixture
def trusted(ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CA as ``SSL_CERT_FILE``, for the clients built from now on."""
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    monkeypatch.setenv("SSL_CERT_FILE", str(cafile))
    return cafile


def settings_on(server: MockLLMServer, **options: Any) -> LLMSettings:
    model = {"provider": "openai", "model": "gpt-4.1-mini", "base_url": server.base_url, "api_key_env": "TEST_LLM_KEY"}
    return LLMSettings(models={"mini": model}, model_default="mini", **options)


def streamed_text(chunks: list[openai.types.chat.ChatCompletionChunk]) -> str:
    return "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)


def test_otel_llm_chats_and_streams_over_tls(tls_server: MockLLMServer, trusted: Path, api: str) -> None:
    assert tls_server.base_url == f"https://127.0.0.1:{tls_server.port}/v1"
    client = get_llm_client_smart(api, settings=settings_on(tls_server))
    reply = client.chat.completions.create(messages=MESSAGES).choices[0].message.content
    assert reply is not None and reply.startswith("mock reply Extract the keywords")
    assert streamed_text(list(client.chat.completions.create(messages=MESSAGES, stream=True))) == reply
    assert [request.endpoint for request in tls_server.requests] == ["chat.completions"] * 2


@pytest.mark.anyio
async def test_otel_llm_async_chats_and_streams_over_tls(tls_server: MockLLMServer, trusted: Path, api: str) -> None:
    client = get_async_llm_client_smart(api, settings=settings_on(tls_server))
    reply = (await client.chat.completions.create(messages=MESSAGES)).choices[0].message.content
    assert reply is not None and reply.startswith("mock reply")
    stream = await client.chat.completions.create(messages=MESSAGES, stream=True)
    assert streamed_text([chunk async for chunk in stream]) == reply


def test_without_the_ca_in_ssl_cert_file_the_certificate_is_refused(
    tls_server: MockLLMServer, api: str, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    client = get_llm_client_smart(api, settings=settings_on(tls_server, retry_attempts=1))
    with pytest.raises(openai.APIConnectionError) as error:
        client.chat.completions.create(messages=MESSAGES)
    assert "CERTIFICATE_VERIFY_FAILED" in repr(error.value.__cause__)
    assert tls_server.requests == [] and tls_server.connections_opened == 1
    time.sleep(0.2)  # meanwhile the server ends the broken handshake, silently
    assert capfd.readouterr().err == "" and not caplog.records


def test_sync_streams_through_otel_llm_keep_one_tls_connection_where_the_raw_sdk_opens_one_each(
    tls_server: MockLLMServer, trusted: Path, api: str
) -> None:
    for http_spans in (False, True):
        tls_server.reset()
        client = get_llm_client_smart(api, settings=settings_on(tls_server, http_spans=http_spans))
        for _ in range(STREAMS):
            list(client.chat.completions.create(messages=MESSAGES, stream=True))
        assert tls_server.connections_opened == 1  # one TLS handshake for all the streams
    tls_server.reset()
    with openai.OpenAI(base_url=tls_server.base_url, api_key=KEY, max_retries=0) as raw:
        for _ in range(STREAMS):
            list(raw.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES, stream=True))
    assert tls_server.connections_opened == STREAMS  # a handshake a stream
    assert len({request.connection for request in tls_server.requests}) == STREAMS


def test_a_client_leaving_a_delayed_answer_over_tls_is_silent(
    tls_server: MockLLMServer, trusted: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    tls_server.add_faults("gpt-4.1-mini", Fault.delay(0.5))
    with openai.OpenAI(base_url=tls_server.base_url, api_key=KEY, max_retries=0) as raw:
        with pytest.raises(openai.APITimeoutError):
            raw.with_options(timeout=0.05).chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
        time.sleep(0.2)  # meanwhile the delayed handler sees its client gone and answers nothing
        assert raw.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES).choices
    assert capfd.readouterr().err == "" and not caplog.records


def test_mock_server_command_serves_https(ca: trustme.CA, tmp_path: Path) -> None:
    certificate = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    certificate.cert_chain_pems[0].write_to_path(str(cert_file))
    certificate.private_key_pem.write_to_path(str(key_file))
    command = ["mock-server", "--port", "0", "--tls-cert", str(cert_file), "--tls-key", str(key_file)]
    process = subprocess.Popen([sys.executable, "-u", "-m", "otel_llm", *command], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().split(" on ", 1)[1].split()[0]
        assert base_url.startswith("https://127.0.0.1:")
        trust = ssl.create_default_context()
        ca.configure_trust(trust)
        http_client = openai.DefaultHttpxClient(verify=trust)
        with openai.OpenAI(base_url=base_url, api_key="k", max_retries=0, http_client=http_client) as raw:
            assert raw.chat.completions.create(model="any", messages=MESSAGES).model == "any"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_mock_server_command_refuses_a_key_without_certificate(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="--tls-key needs --tls-cert"):
        main(["mock-server", "--port", "0", "--tls-key", str(tmp_path / "key.pem")])
    with pytest.raises(SystemExit, match="cannot load the TLS certificate"):
        main(["mock-server", "--port", "0", "--tls-cert", str(tmp_path / "missing.pem")])


def test_tls_takes_a_server_side_context() -> None:
    with pytest.raises(TypeError, match="server-side"):
        MockLLMServer(tls=ssl.create_default_context())  # a client's context
    with pytest.raises(TypeError, match="server-side"):
        MockLLMServer(tls="cert.pem")  # type: ignore[arg-type]
