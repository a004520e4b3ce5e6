"""Test utilities: an embedded OpenAI-compatible server with scripted faults and provider quirks.

Point your own configuration at :class:`MockLLMServer` to test selection,
retries, fallbacks, timeouts and telemetry offline, over real HTTP. It serves,
in the OpenAI and the Azure OpenAI URL shapes: chat completions, embeddings and
the Responses API (plain and streamed, structured outputs, stored responses
with ``previous_response_id``), plus ``models``, ``files`` and ``batches``
listings, with deterministic token usage and ``x-ratelimit-*`` headers:

>>> with MockLLMServer() as server:
...     server.add_faults("gpt-4.1-mini", Fault.status(429, retry_after=0.1))
...     ...  # call through openai.OpenAI(base_url=server.base_url, api_key="test")
...     server.requests[0].model
'gpt-4.1-mini'

A :class:`Fault` fails one request (error statuses, delays, :meth:`Fault.hang`,
dropped connections, malformed bodies, :meth:`Fault.cut_stream`,
:meth:`Fault.stall_stream`); a :class:`Quirk` shapes every answer for a model
as another provider would, until cleared:

>>> server.set_quirks("my-azure-deployment", Quirk.PROMPT_FILTER_CHUNK, Quirk.NO_MODEL)

With pytest, the ``llm_server`` fixture (plugin ``otel_llm``) yields a started
server per test.
"""

from ._faults import Fault, FaultKind
from ._quirks import Quirk
from ._server import Endpoint, MockLLMServer, RecordedRequest, Shape

__all__ = ["Endpoint", "Fault", "FaultKind", "MockLLMServer", "Quirk", "RecordedRequest", "Shape"]
