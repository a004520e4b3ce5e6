"""The monitoring bundle holds together: collector config, compose stack, Grafana provisioning, dashboards.

Fast checks of the files themselves (no container is started); the live test
(test_monitoring_live.py) proves each dashboard query against a real Prometheus.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import typing
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from otel_llm import SelectionSource

ROOT = Path(__file__).resolve().parents[1]
COLLECTOR = ROOT / "collector"
DASHBOARDS = ROOT / "dashboards"


def load_yaml(path: Path) -> Any:
    with path.open() as file:
        return yaml.safe_load(file)


# ---------------------------------------------------------------------------- collector


@pytest.fixture(scope="module")
def collector() -> dict[str, Any]:
    config = load_yaml(COLLECTOR / "otel-collector.yaml")
    assert isinstance(config, dict)
    return config


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    config = load_yaml(COLLECTOR / "compose.yaml")
    assert isinstance(config, dict)
    return config


def kind(component_id: str) -> str:
    """``otlp_grpc/jaeger`` -> ``otlp_grpc``."""
    return component_id.split("/", 1)[0]


# Component types that the pinned collector (0.144.0) no longer has, or keeps
# only as deprecated aliases: a config using them breaks on the next upgrade.
DEPRECATED = {
    "exporters": {
        "logging": "removed: use debug",
        "jaeger": "removed: Jaeger takes OTLP (otlp_grpc)",
        "jaeger_thrift": "removed: Jaeger takes OTLP (otlp_grpc)",
        "otlp": "deprecated alias of otlp_grpc since 0.144.0",
        "otlphttp": "deprecated alias of otlp_http since 0.144.0",
    },
    "processors": {
        "spanmetrics": "removed: the spanmetrics connector replaces it",
        "servicegraph": "removed: the servicegraph connector replaces it",
    },
    "receivers": {},
    "connectors": {},
    "extensions": {},
}


def pipelines(collector: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    found = collector["service"]["pipelines"]
    assert found, "no pipelines"
    return found  # type: ignore[no-any-return]


def test_collector_config_sections(collector: dict[str, Any]) -> None:
    assert set(collector) <= {"receivers", "processors", "exporters", "connectors", "extensions", "service"}
    assert set(collector["service"]) <= {"pipelines", "extensions", "telemetry"}
    for extension in collector["service"].get("extensions", []):
        assert extension in collector.get("extensions", {}), f"service extension {extension} is not defined"


def test_every_pipeline_references_defined_components(collector: dict[str, Any]) -> None:
    connectors = collector.get("connectors", {})
    for name, pipeline in pipelines(collector).items():
        assert kind(name) in {"traces", "metrics", "logs"}, name
        assert pipeline.get("receivers") and pipeline.get("exporters"), f"pipeline {name} needs receivers and exporters"
        assert set(pipeline) <= {"receivers", "processors", "exporters"}, name
        for receiver in pipeline["receivers"]:
            assert receiver in collector.get("receivers", {}) or receiver in connectors, f"{name}: {receiver} undefined"
        for processor in pipeline.get("processors", []):
            assert processor in collector.get("processors", {}), f"{name}: processor {processor} undefined"
        for exporter in pipeline["exporters"]:
            assert exporter in collector.get("exporters", {}) or exporter in connectors, f"{name}: {exporter} undefined"


def test_every_defined_component_is_used(collector: dict[str, Any]) -> None:
    used = {
        section: {component for pipeline in pipelines(collector).values() for component in pipeline.get(section, [])}
        for section in ("receivers", "processors", "exporters")
    }
    for section in ("receivers", "processors", "exporters"):
        assert set(collector.get(section, {})) <= used[section], f"unused {section}"
    assert set(collector.get("connectors", {})) <= used["receivers"] | used["exporters"], "unused connectors"


def test_connectors_join_two_pipelines(collector: dict[str, Any]) -> None:
    connectors = collector.get("connectors", {})
    for connector in connectors:
        exporting = {name for name, p in pipelines(collector).items() if connector in p["exporters"]}
        receiving = {name for name, p in pipelines(collector).items() if connector in p["receivers"]}
        assert exporting and receiving, f"connector {connector} must export from one pipeline and receive in another"
        assert exporting.isdisjoint(receiving), f"connector {connector} feeds the pipeline it comes from"


def test_no_deprecated_components(collector: dict[str, Any]) -> None:
    for section, deprecated in DEPRECATED.items():
        for component in collector.get(section, {}):
            assert kind(component) not in deprecated, f"{section}.{component}: {deprecated.get(kind(component))}"


def test_otlp_receiver_listens_on_all_interfaces(collector: dict[str, Any]) -> None:
    [otlp] = [config for name, config in collector["receivers"].items() if kind(name) == "otlp"]
    assert otlp["protocols"]["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert otlp["protocols"]["http"]["endpoint"] == "0.0.0.0:4318"
    receiving = {name for name, p in pipelines(collector).items() if "otlp" in p["receivers"]}
    assert {kind(name) for name in receiving} >= {"traces", "metrics"}


def test_memory_limiter_first_and_batch_last(collector: dict[str, Any]) -> None:
    for name, pipeline in pipelines(collector).items():
        processors = [kind(p) for p in pipeline.get("processors", [])]
        assert processors[:1] == ["memory_limiter"], f"{name}: memory_limiter must come first, got {processors}"
        assert processors[-1:] == ["batch"], f"{name}: batch must come last, got {processors}"


def test_traces_go_to_jaeger_and_tempo_over_otlp(collector: dict[str, Any], compose: dict[str, Any]) -> None:
    traces = [p for name, p in pipelines(collector).items() if kind(name) == "traces"]
    exporters = {e for p in traces for e in p["exporters"] if e in collector["exporters"]}
    hosts = {}
    for exporter in exporters:
        assert kind(exporter) == "otlp_grpc", f"traces go out over OTLP/gRPC, not {exporter}"
        host, port = collector["exporters"][exporter]["endpoint"].rsplit(":", 1)
        hosts[host] = port
    assert hosts == {"jaeger": "4317", "tempo": "4317"}
    assert set(hosts) <= set(compose["services"]), "trace backends must be services of the compose stack"


# Attributes that carry message content: the GenAI semantic conventions' own
# (the registry flags each as holding sensitive information), their deprecated
# predecessors, and the indexed keys other instrumentations (OpenLLMetry) write.
CONTENT_KEYS = [
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.definitions",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "gen_ai.retrieval.query.text",
    "gen_ai.prompt",
    "gen_ai.completion",
    "gen_ai.prompt.0.content",
    "gen_ai.prompt.0.role",
    "gen_ai.prompt.12.content",
    "gen_ai.completion.0.content",
    "gen_ai.completion.0.tool_calls.0.arguments",
]
# What the dashboards, the trace views and the cost model need: it must survive.
KEPT_KEYS = [
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.response.id",
    "gen_ai.response.finish_reasons",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.prompt_tokens",
    "gen_ai.usage.completion_tokens",
    "gen_ai.prompt_tokens",
    "gen_ai.completion_tokens",
    "gen_ai.prompt.name",
    "gen_ai.tool.name",
    "gen_ai.tool.call.id",
    "gen_ai.conversation.id",
    "gen_ai.output.type",
    "gen_ai.input.messages_count",
    "x.gen_ai.input.messages",
    "otel_llm.api.name",
    "error.type",
]
# The contexts whose attributes a pipeline of each signal must clean.
CONTENT_CONTEXTS = {"traces": ("span", "spanevent"), "logs": ("log",)}
_DELETE = re.compile(r'(delete_key|delete_matching_keys)\(attributes, ("(?:[^"\\]|\\.)*")\)')


def ottl_string(literal: str) -> str:
    """The value of an OTTL string literal as the collector config holds it.

    The collector first turns ``$$`` into ``$`` (its escape for a literal
    dollar), then OTTL unquotes the literal with Go's escapes (a doubled
    backslash stands for one), which JSON's string syntax matches for what
    these patterns use.
    """
    value = json.loads(literal.replace("$$", "$"))
    assert isinstance(value, str)
    return value


def deleted_key_patterns(collector: dict[str, Any], pipeline: dict[str, list[str]], context: str) -> list[str]:
    """The regexes (RE2, unanchored like Go's MatchString) of the keys a pipeline deletes in a context."""
    patterns = []
    for processor in pipeline.get("processors", []):
        config = collector["processors"][processor] or {}
        if kind(processor) != "transform":
            continue
        for section in ("trace_statements", "log_statements"):
            for group in config.get(section, []):
                if group.get("context") != context:
                    continue
                for statement in group["statements"]:
                    match = _DELETE.fullmatch(statement.strip())  # with a `where`, it would not always run
                    if match is None:
                        continue
                    function, literal = match.groups()
                    value = ottl_string(literal)
                    patterns.append(value if function == "delete_matching_keys" else f"^{re.escape(value)}$")
    return patterns


def test_ottl_string_and_delete_statements() -> None:
    assert ottl_string(r'"^gen_ai\\.prompt$$"') == r"^gen_ai\.prompt$"
    collector = {
        "processors": {
            "transform/x": {
                "trace_statements": [
                    {
                        "context": "span",
                        "statements": [
                            'delete_key(attributes, "a.b")',
                            r'delete_matching_keys(attributes, "^c\\.")',
                            'delete_key(attributes, "d") where name == "x"',
                        ],
                    }
                ]
            }
        }
    }
    patterns = deleted_key_patterns(collector, {"processors": ["transform/x"]}, "span")
    assert patterns == [r"^a\.b$", r"^c\."]


def test_message_content_is_dropped(collector: dict[str, Any]) -> None:
    """Prompts, completions and tool payloads never reach a backend, whatever a service records."""
    checked = 0
    for name, pipeline in pipelines(collector).items():
        for context in CONTENT_CONTEXTS.get(kind(name), ()):
            patterns = deleted_key_patterns(collector, pipeline, context)
            for pattern in patterns:
                assert pattern.startswith("^") and pattern.endswith("$"), f"{name}/{context}: anchor {pattern!r}"
            kept = [key for key in CONTENT_KEYS if not any(re.search(p, key) for p in patterns)]
            assert not kept, f"{name}: {context} attributes keep message content {kept}"
            dropped = [key for key in KEPT_KEYS if any(re.search(p, key) for p in patterns)]
            assert not dropped, f"{name}: {context} attributes lose {dropped}"
            checked += 1
    assert checked >= 2, "the traces pipeline's span and span event attributes"


def test_prometheus_exporter_with_exemplars_is_scraped(collector: dict[str, Any]) -> None:
    [(name, config)] = [(n, c) for n, c in collector["exporters"].items() if kind(n) == "prometheus"]
    assert config["enable_open_metrics"] is True, "exemplars are only exported in the OpenMetrics format"
    metrics = [p for pipeline_name, p in pipelines(collector).items() if kind(pipeline_name) == "metrics"]
    assert any(name in p["exporters"] for p in metrics)
    port = config["endpoint"].rsplit(":", 1)[1]
    prometheus = load_yaml(COLLECTOR / "prometheus.yaml")
    [job] = [
        j for j in prometheus["scrape_configs"] if any(f"collector:{port}" in c["targets"] for c in j["static_configs"])
    ]
    assert job["honor_labels"] is True


# ---------------------------------------------------------------------------- compose


STACK = {"collector", "jaeger", "tempo", "prometheus", "grafana"}
# The ports the README tells users about: OTLP in, Grafana, Jaeger, Prometheus.
README_PORTS = {4317, 4318, 3000, 16686, 9090}
_PINNED_IMAGE = re.compile(r"^[a-z0-9./_-]+:v?\d+\.\d+(\.\d+)?(-[\w.]+)?(@sha256:[0-9a-f]{64})?$")


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]  # type: ignore[no-any-return]


def test_compose_has_the_whole_stack(compose: dict[str, Any]) -> None:
    assert set(services(compose)) == STACK


@pytest.mark.parametrize("service", sorted(STACK))
def test_compose_images_are_pinned(compose: dict[str, Any], service: str) -> None:
    image = services(compose)[service]["image"]
    assert "latest" not in image and _PINNED_IMAGE.match(image), (
        f"{service}: image {image!r} is not pinned to a version"
    )


@pytest.mark.parametrize(
    "image",
    ["grafana/grafana:latest", "grafana/grafana", "prom/prometheus:main", "otel/x:0.144", "grafana/tempo:2.10.0"],
)
def test_pinned_image_rule(image: str) -> None:
    assert bool(_PINNED_IMAGE.match(image)) is (image in {"otel/x:0.144", "grafana/tempo:2.10.0"})


def mounts(service: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(type, source, container path) of each mount, short or long syntax.

    The type is "bind" (the source is a host path), "volume" (the source names
    a volume, or is empty for an anonymous one) or another long-syntax type.
    """
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            parts = volume.split(":")
            if len(parts) == 1:
                yield "volume", "", parts[0]
            else:
                source, target = parts[:2]
                yield ("bind" if source.startswith((".", "/", "~")) else "volume"), source, target
        else:
            yield volume.get("type", "volume"), volume.get("source", ""), volume["target"]


def bind_mounts(service: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(host path, container path) of each bind mount, short or long syntax."""
    for type_, source, target in mounts(service):
        if type_ == "bind":
            yield source, target


def test_mounts_short_and_long_syntax() -> None:
    service = {
        "volumes": [
            "./a.yaml:/etc/a.yaml:ro",
            "data:/var/data",
            "/anonymous",
            {"type": "volume", "source": "more", "target": "/var/more"},
            {"type": "bind", "source": "../b", "target": "/b", "read_only": True},
        ]
    }
    assert list(mounts(service)) == [
        ("bind", "./a.yaml", "/etc/a.yaml"),
        ("volume", "data", "/var/data"),
        ("volume", "", "/anonymous"),
        ("volume", "more", "/var/more"),
        ("bind", "../b", "/b"),
    ]
    assert list(bind_mounts(service)) == [("./a.yaml", "/etc/a.yaml"), ("../b", "/b")]


def test_every_mounted_file_exists(compose: dict[str, Any]) -> None:
    mounts = 0
    for name, service in services(compose).items():
        for source, _ in bind_mounts(service):
            assert (COLLECTOR / source).exists(), f"{name} mounts {source}, missing next to compose.yaml"
            mounts += 1
    assert mounts >= 5


def published_ports(service: dict[str, Any]) -> set[int]:
    found = set()
    for port in service.get("ports", []):
        if isinstance(port, dict):
            found.add(int(port["published"]))
        else:
            found.add(int(str(port).split("/")[0].split(":")[-2]))
    return found


def test_readme_ports_are_published(compose: dict[str, Any]) -> None:
    published = set().union(*(published_ports(service) for service in services(compose).values()))
    assert published >= README_PORTS
    assert published_ports(services(compose)["collector"]) >= {4317, 4318}
    assert 3000 in published_ports(services(compose)["grafana"])
    assert 16686 in published_ports(services(compose)["jaeger"])
    assert 9090 in published_ports(services(compose)["prometheus"])


def container_path(service: dict[str, Any], host_path: str) -> str:
    [target] = [
        target
        for source, target in bind_mounts(service)
        if (COLLECTOR / source).resolve() == (COLLECTOR / host_path).resolve()
    ]
    return target


def test_collector_service_runs_this_config(compose: dict[str, Any]) -> None:
    collector = services(compose)["collector"]
    assert "contrib" in collector["image"], "the transform processor needs the contrib distribution"
    config = container_path(collector, "otel-collector.yaml")
    assert any(arg.endswith(config) for arg in collector["command"]), collector["command"]


# The OTLP ports of the collector and the protocol each speaks. The SDK's
# default protocol is http/protobuf: an endpoint on 4317 needs
# OTEL_EXPORTER_OTLP_PROTOCOL=grpc beside it, one on 4318 must not have it.
OTLP_PORT_PROTOCOLS = {"4317": "grpc", "4318": "http/protobuf"}
_SIGNAL = r"OTEL_EXPORTER_OTLP(?:_TRACES|_METRICS|_LOGS)?"
_ENDPOINT_SETTING = re.compile(_SIGNAL + r"_ENDPOINT\s*[=:]\s*(?:https?://)?[\w.-]+:(\d+)")
_PROTOCOL_SETTING = re.compile(_SIGNAL + r"_PROTOCOL\s*[=:]\s*([\w/]+)")
_NEARBY = 300  # characters: a protocol this far from its endpoint does not go with it


def otlp_settings(text: str) -> list[tuple[str, str]]:
    """(port, protocol) of each OTLP endpoint a text suggests.

    Each protocol setting goes with the endpoint nearest to it (within
    _NEARBY characters); an endpoint with none has the SDK's default.
    """
    endpoints = [(match.start(), match.group(1)) for match in _ENDPOINT_SETTING.finditer(text)]
    protocols: dict[int, str] = {}
    for match in _PROTOCOL_SETTING.finditer(text):
        distance, nearest = min(((abs(match.start() - at), at) for at, _ in endpoints), default=(_NEARBY, -1))
        if distance < _NEARBY:
            protocols[nearest] = match.group(1)
    return [(port, protocols.get(at, "http/protobuf")) for at, port in endpoints]


def test_otlp_settings_pair_endpoints_and_protocols() -> None:
    assert otlp_settings("OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317") == [("4317", "http/protobuf")]
    text = (
        "OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 (the default protocol), or\n"
        "OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 with OTEL_EXPORTER_OTLP_PROTOCOL=grpc"
    )
    assert otlp_settings(text) == [("4318", "http/protobuf"), ("4317", "grpc")]
    assert otlp_settings("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: collector:4317\nOTEL_EXPORTER_OTLP_PROTOCOL: grpc") == [
        ("4317", "grpc")
    ]


def test_suggested_otlp_endpoints_speak_their_ports_protocol() -> None:
    """An endpoint suggested in the bundle or its README works when copied as it stands."""
    files = [path for path in sorted(COLLECTOR.rglob("*")) if path.is_file()]
    files += [*sorted(DASHBOARDS.glob("*.json")), ROOT / "README.md"]
    suggested = 0
    for path in files:
        for port, protocol in otlp_settings(path.read_text()):
            where = path.relative_to(ROOT)
            assert port in OTLP_PORT_PROTOCOLS, f"{where}: OTLP endpoint on port {port}, the collector has 4317/4318"
            assert protocol == OTLP_PORT_PROTOCOLS[port], (
                f"{where}: an endpoint on {port} with protocol {protocol}: "
                f"port {port} speaks {OTLP_PORT_PROTOCOLS[port]} (set OTEL_EXPORTER_OTLP_PROTOCOL to match)"
            )
            suggested += 1
    assert suggested >= 1


def test_prometheus_service(compose: dict[str, Any]) -> None:
    prometheus = services(compose)["prometheus"]
    assert "--enable-feature=exemplar-storage" in prometheus["command"]
    config = container_path(prometheus, "prometheus.yaml")
    assert f"--config.file={config}" in prometheus["command"]


# Flags and feature flags the pinned Prometheus (3.9) has removed or deprecated.
DEPRECATED_PROMETHEUS_FLAGS = {
    "--storage.tsdb.retention": "removed in 3.0",
    "--storage.tsdb.retention.time": "deprecated (prometheus#17026): storage.tsdb.retention in the config file",
    "--storage.tsdb.retention.size": "deprecated (prometheus#17026): storage.tsdb.retention in the config file",
    "--alertmanager.timeout": "removed in 3.0",
}
REMOVED_PROMETHEUS_FEATURES = {
    "promql-at-modifier", "promql-negative-offset", "new-service-discovery-manager", "expand-external-labels",
    "no-default-scrape-port", "agent", "remote-write-receiver", "otlp-write-receiver", "auto-gomemlimit",
    "utf8-names",
}  # fmt: skip


def test_prometheus_command_has_no_deprecated_flag(compose: dict[str, Any]) -> None:
    for arg in services(compose)["prometheus"]["command"]:
        flag, _, value = arg.partition("=")
        assert flag not in DEPRECATED_PROMETHEUS_FLAGS, f"{flag}: {DEPRECATED_PROMETHEUS_FLAGS.get(flag)}"
        if flag == "--enable-feature":
            removed = set(value.split(",")) & REMOVED_PROMETHEUS_FEATURES
            assert not removed, f"feature flags removed in Prometheus 3.0 (now the default): {removed}"


def test_tempo_receives_otlp_from_the_collector(compose: dict[str, Any]) -> None:
    tempo = services(compose)["tempo"]
    config_path = container_path(tempo, "tempo.yaml")
    assert any(arg.endswith(config_path) for arg in tempo["command"])
    config = load_yaml(COLLECTOR / "tempo.yaml")
    assert config["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert config["server"]["http_listen_port"] == 3200


def storage_paths(service: str, compose: dict[str, Any]) -> list[str]:
    """Where a service of the stack writes the data it keeps."""
    if service == "tempo":

        def paths(node: Any) -> Iterator[str]:
            if isinstance(node, dict):
                for key, value in node.items():
                    if key == "path" and isinstance(value, str):
                        yield value
                    else:
                        yield from paths(value)
            elif isinstance(node, list):
                for item in node:
                    yield from paths(item)

        return list(paths(load_yaml(COLLECTOR / "tempo.yaml")))
    if service == "prometheus":
        flag = "--storage.tsdb.path="
        return [arg.removeprefix(flag) for arg in services(compose)["prometheus"]["command"] if arg.startswith(flag)]
    raise AssertionError(f"no storage known for {service}")


@pytest.mark.parametrize("service", ["tempo", "prometheus"])
def test_stored_data_outlives_the_containers(compose: dict[str, Any], service: str) -> None:
    """Data under a named volume survives `docker compose down` (and `up` again); the container's own does not."""
    declared = set(compose.get("volumes") or {})
    targets = [
        PurePosixPath(target)
        for type_, source, target in mounts(services(compose)[service])
        if type_ == "volume" and source in declared
    ]
    paths = storage_paths(service, compose)
    assert paths, f"{service}: no storage path found"
    for path in paths:
        assert any(PurePosixPath(path).is_relative_to(target) for target in targets), (
            f"{service} stores {path} outside every named volume ({[str(t) for t in targets]})"
        )


def test_prometheus_config_is_valid() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        message = "promtool (Debian package prometheus) is missing"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    result = subprocess.run(
        [promtool, "check", "config", "--syntax-only", str(COLLECTOR / "prometheus.yaml")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------------------- grafana provisioning


def datasources() -> dict[str, dict[str, Any]]:
    config = load_yaml(COLLECTOR / "grafana/provisioning/datasources/datasources.yaml")
    return {source["type"]: source for source in config["datasources"]}


def test_grafana_datasources(compose: dict[str, Any]) -> None:
    sources = datasources()
    assert set(sources) == {"prometheus", "tempo", "jaeger"}
    assert sources["prometheus"]["isDefault"] is True
    # Each points at its compose service, on the port that service listens on in the network.
    assert {kind: source["url"] for kind, source in sources.items()} == {
        "prometheus": "http://prometheus:9090",
        "tempo": "http://tempo:3200",
        "jaeger": "http://jaeger:16686",
    }
    assert {"prometheus", "tempo", "jaeger"} <= set(services(compose))
    destinations = sources["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert {d["name"] for d in destinations} == {"trace_id"}, "the collector's exemplars carry trace_id"
    assert sources["tempo"]["uid"] in {d.get("datasourceUid") for d in destinations}
    assert any("$${__value.raw}" in d.get("url", "") for d in destinations), "a Jaeger link, $ escaped for provisioning"


GRAFANA_PROVISIONING = "/etc/grafana/provisioning"


def test_grafana_mounts_only_the_provisioning_folders_it_brings(compose: dict[str, Any]) -> None:
    """Mounting all of provisioning/ would hide the image's plugins/, alerting/, notifiers/... folders."""
    grafana = services(compose)["grafana"]
    targets = {target.rstrip("/"): (type_, source) for type_, source, target in mounts(grafana)}
    assert GRAFANA_PROVISIONING not in targets, "a mount on provisioning/ itself hides the image's other folders"
    provisioning = {t: m for t, m in targets.items() if t.startswith(GRAFANA_PROVISIONING + "/")}
    assert set(provisioning) == {f"{GRAFANA_PROVISIONING}/datasources", f"{GRAFANA_PROVISIONING}/dashboards"}
    for target, (type_, source) in provisioning.items():
        assert type_ == "bind", target
        folder = COLLECTOR / source
        assert folder.is_dir() and folder.name == target.rsplit("/", 1)[1], f"{source} -> {target}"
        assert list(folder.glob("*.yaml")), f"{source} holds no provisioning file"


def test_grafana_loads_the_dashboards_folder(compose: dict[str, Any]) -> None:
    grafana = services(compose)["grafana"]
    target = container_path(grafana, "../dashboards")
    assert (COLLECTOR / "../dashboards").resolve() == DASHBOARDS
    provisioning = container_path(grafana, "grafana/provisioning/dashboards")
    assert provisioning == f"{GRAFANA_PROVISIONING}/dashboards"
    [provider] = load_yaml(COLLECTOR / "grafana/provisioning/dashboards/dashboards.yaml")["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == target
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(target + "/") and (DASHBOARDS / home[len(target) + 1 :]).is_file()


# ---------------------------------------------------------------------------- dashboards

UIDS = {"otel-llm-cost", "otel-llm-latency", "otel-llm-reliability", "otel-llm-experiments"}

_ATTEMPT_LABELS = {
    "gen_ai_operation_name",
    "gen_ai_provider_name",
    "gen_ai_request_model",
    "error_type",
    "otel_llm_api_name",
    "otel_llm_model_alias",
}
# SPEC §6: the metric families Prometheus sees and their labels.
FAMILIES: dict[str, tuple[str, set[str]]] = {
    "gen_ai_client_operation_duration_seconds": ("histogram", _ATTEMPT_LABELS),
    "gen_ai_client_token_usage": ("histogram", _ATTEMPT_LABELS | {"gen_ai_token_type"}),
    "gen_ai_client_operation_time_to_first_chunk_seconds": ("histogram", _ATTEMPT_LABELS),
    "otel_llm_call_duration_seconds": (
        "histogram",
        {"otel_llm_api_name", "otel_llm_model_alias", "otel_llm_selection_source", "otel_llm_outcome"},
    ),
    "otel_llm_cost_usd_total": ("counter", {"otel_llm_api_name", "otel_llm_model_alias", "gen_ai_request_model"}),
    "otel_llm_fallbacks_total": (
        "counter",
        {"otel_llm_api_name", "otel_llm_fallback_from", "otel_llm_fallback_to", "error_type"},
    ),
    "otel_llm_breaker_transitions_total": ("counter", {"otel_llm_model_alias", "otel_llm_breaker_state"}),
    "otel_llm_config_reloads_total": ("counter", {"otel_llm_outcome"}),
    "otel_llm_budget_remaining": ("gauge", {"otel_llm_api_name", "otel_llm_budget_window"}),
    "otel_llm_budget_exceeded_total": ("counter", {"otel_llm_api_name", "otel_llm_outcome"}),
    "otel_llm_state_errors_total": ("counter", {"error_type"}),
}
TARGET_LABELS = {"job", "instance"}  # what Prometheus (or the collector) adds to every series


def metric_labels(name: str) -> set[str] | None:
    """The labels of a metric name Prometheus sees for SPEC §6, or None if it is not one."""
    if name in FAMILIES and FAMILIES[name][0] in ("counter", "gauge"):
        return FAMILIES[name][1] | TARGET_LABELS
    for suffix, extra in (("_bucket", {"le"}), ("_sum", set()), ("_count", set())):
        family = name.removesuffix(suffix)
        if name.endswith(suffix) and FAMILIES.get(family, ("", set()))[0] == "histogram":
            return FAMILIES[family][1] | TARGET_LABELS | extra
    return None


_FUNCTIONS = {
    "sum", "min", "max", "avg", "count", "topk", "bottomk", "quantile", "stddev", "group",
    "rate", "irate", "increase", "delta", "histogram_quantile", "label_values", "clamp_min", "clamp_max",
    "abs", "ceil", "floor", "round", "vector", "scalar", "timestamp", "time", "sort", "sort_desc",
    "last_over_time", "max_over_time", "min_over_time", "avg_over_time", "sum_over_time", "absent",
    "start", "end",  # of the @ modifier: `x[$__range] @ end()`
}  # fmt: skip
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool"}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*")\s*')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)\]\]|\$(\w+)")


def parse_promql(expr: str) -> tuple[dict[str, list[list[tuple[str, str, str]]]], set[str]]:
    """({metric: [matchers of each selector]}, grouping labels) of a PromQL expression.

    Enough PromQL for the dashboards' queries: selectors with or without
    braces, ``by (...)`` and friends; label values and durations are skipped.
    """
    variable = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", expr)
    if variable:  # a Grafana variable query: the label listed counts as a grouping label
        selectors, grouping = parse_promql(variable.group(1))
        return selectors, grouping | {variable.group(2)}
    selectors: dict[str, list[list[tuple[str, str, str]]]] = {}
    grouping = {label.strip() for group in _GROUPING.findall(expr) for label in group.split(",") if label.strip()}
    for name, body in _SELECTOR.findall(expr):
        matchers = []
        for part in re.split(r',(?=(?:[^"]*"[^"]*")*[^"]*$)', body):
            if part.strip():
                match = _MATCHER.fullmatch(part)
                assert match, f"cannot parse matcher {part!r} in {expr}"
                matchers.append((match.group(1), match.group(2), json.loads(match.group(3))))
        selectors.setdefault(name, []).append(matchers)
    bare = _GROUPING.sub(" ", _STRING.sub('""', expr))
    bare = re.sub(r"\{[^}]*\}", " ", bare)
    bare = re.sub(r"\[[^\]]*\]", " ", bare)
    for name in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", bare):
        if name not in _FUNCTIONS and name not in _KEYWORDS and not re.fullmatch(r"\d+\w*", name):
            selectors.setdefault(name, [])
    return selectors, grouping


def test_promql_parser_sees_metrics_labels_and_groupings() -> None:
    selectors, grouping = parse_promql(
        'histogram_quantile(0.95, sum by (le, otel_llm_api_name) (rate(x_bucket{a=~"$api", b!="v,w"}[5m]))) '
        "/ ignoring(le) sum(y_total)"
    )
    assert selectors == {"x_bucket": [[("a", "=~", "$api"), ("b", "!=", "v,w")]], "y_total": []}
    assert grouping == {"le", "otel_llm_api_name"}
    assert metric_labels("otel_llm_call_duration_seconds_bucket") is not None
    assert "le" not in (metric_labels("otel_llm_call_duration_seconds_count") or {"le"})
    assert metric_labels("otel_llm_cost_usd_total_bucket") is None
    assert metric_labels("gen_ai_client_token_usage") is None  # a histogram has no bare series
    assert parse_promql('label_values(m_count{a=~"$api"}, b)') == ({"m_count": [[("a", "=~", "$api")]]}, {"b"})


def load_dashboards() -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted(DASHBOARDS.glob("*.json")):
        found[path.name] = json.loads(path.read_text())
    return found


DASHBOARD_FILES = load_dashboards()


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def query_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    return (panel for panel in all_panels(dashboard["panels"]) if panel["type"] != "row")


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in dashboard["templating"]["list"]}


def variable_query(variable: dict[str, Any]) -> str:
    query = variable["query"]
    return query["query"] if isinstance(query, dict) else query  # type: ignore[no-any-return]


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target and query variable."""
    for panel in query_panels(dashboard):
        for target in panel["targets"]:
            yield f"{dashboard['uid']}: {panel['title']} [{target['refId']}]", target["expr"]
    for name, variable in variables(dashboard).items():
        if variable["type"] == "query":
            yield f"{dashboard['uid']}: ${name}", variable_query(variable)


def test_dashboards_with_stable_uids() -> None:
    assert {d["uid"] for d in DASHBOARD_FILES.values()} == UIDS
    assert len({d["title"] for d in DASHBOARD_FILES.values()}) == len(UIDS)
    for name, dashboard in DASHBOARD_FILES.items():
        assert name == f"{dashboard['uid']}.json"


@pytest.fixture(params=sorted(DASHBOARD_FILES), ids=lambda name: name.removesuffix(".json"))
def dashboard(request: pytest.FixtureRequest) -> dict[str, Any]:
    return DASHBOARD_FILES[request.param]  # type: ignore[no-any-return]


def test_dashboard_shape(dashboard: dict[str, Any]) -> None:
    assert 39 <= dashboard["schemaVersion"] <= 41
    assert dashboard.get("id") is None, "a provisioned dashboard carries no database id"
    assert dashboard["title"] and dashboard["description"] and "otel-llm" in dashboard["tags"]
    text = json.dumps(dashboard)
    assert "__inputs" not in dashboard and "__requires" not in dashboard
    assert "${DS_" not in text, "export placeholders break file provisioning"
    assert dashboard["panels"], "no panels"


def test_panel_ids_unique(dashboard: dict[str, Any]) -> None:
    ids = [panel["id"] for panel in all_panels(dashboard["panels"])]
    assert all(isinstance(i, int) for i in ids)
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {dashboard['uid']}"


def test_panels_fit_the_grid_without_overlap(dashboard: dict[str, Any]) -> None:
    taken: dict[tuple[int, int], str] = {}
    for panel in all_panels(dashboard["panels"]):
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        assert grid["h"] >= (1 if panel["type"] == "row" else 4), f"{panel['title']} too small"
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"{panel['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = panel["title"]


def test_datasource_variable_used_by_every_panel(dashboard: dict[str, Any]) -> None:
    defined = variables(dashboard)
    [datasource] = [v for v in defined.values() if v["type"] == "datasource"]
    assert datasource["query"] == "prometheus"
    datasource_refs = {f"${{{name}}}" for name, v in defined.items() if v["type"] == "datasource"}
    for panel in query_panels(dashboard):
        assert panel["datasource"]["uid"] in datasource_refs, f"{panel['title']}: {panel['datasource']}"
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in datasource_refs, f"{panel['title']} [{target['refId']}]"
    for variable in defined.values():
        if variable["type"] == "query":
            assert variable["datasource"]["uid"] in datasource_refs, variable["name"]


def test_api_and_model_variables(dashboard: dict[str, Any]) -> None:
    defined = variables(dashboard)
    for name, label in (("api", "otel_llm_api_name"), ("model", "otel_llm_model_alias")):
        variable = defined[name]
        assert variable["type"] == "query" and variable["multi"] and variable["includeAll"]
        assert variable["allValue"] == ".*"
        assert re.fullmatch(rf"label_values\(\w+(\{{[^}}]*\}})?, {label}\)", variable_query(variable))


def test_every_variable_used_is_defined(dashboard: dict[str, Any]) -> None:
    defined = set(variables(dashboard))
    texts = [expr for _, expr in queries(dashboard)]
    texts += [link.get("url", "") for panel in all_panels(dashboard["panels"]) for link in panel.get("links", [])]
    texts += [link.get("url", "") for link in dashboard.get("links", [])]
    for text in texts:
        for match in _VARIABLE.finditer(text):
            name = next(group for group in match.groups() if group)
            assert name.startswith("__") or name in defined, f"${name} used in {text!r} but not defined"


def test_queries_use_only_spec_metrics_and_their_labels(dashboard: dict[str, Any]) -> None:
    for where, expr in queries(dashboard):
        selectors, grouping = parse_promql(expr)
        assert selectors, f"{where}: no metric in {expr}"
        known: set[str] = set()
        for name, uses in selectors.items():
            labels = metric_labels(name)
            assert labels is not None, f"{where}: {name} is not a SPEC §6 metric"
            known |= labels
            for matchers in uses:
                for label, _, _ in matchers:
                    assert label in labels, f"{where}: {name} has no label {label}"
        assert grouping <= known, f"{where}: grouping by {grouping - known}, labels no metric of the query has"


def test_queries_follow_the_api_and_model_selectors(dashboard: dict[str, Any]) -> None:
    """Every selector of a metric with an API or model label is filtered by $api / $model."""
    for where, expr in queries(dashboard):
        if where.endswith("$api"):
            continue  # the API list itself
        for name, uses in parse_promql(expr)[0].items():
            labels = metric_labels(name) or set()
            for matchers in uses:
                if "otel_llm_api_name" in labels:
                    assert ("otel_llm_api_name", "=~", "$api") in matchers, f"{where}: {name} ignores $api"
                if "otel_llm_model_alias" in labels and not where.endswith("$model"):
                    assert ("otel_llm_model_alias", "=~", "$model") in matchers, f"{where}: {name} ignores $model"


UNITS = {"currencyUSD", "s", "short", "reqps", "percentunit"}


def test_panels_have_units_descriptions_and_legends(dashboard: dict[str, Any]) -> None:
    for panel in query_panels(dashboard):
        assert panel["title"] and panel.get("description"), f"{panel['title']}: needs a title and a description"
        if panel["type"] in {"timeseries", "stat", "piechart", "table"}:
            unit = panel["fieldConfig"]["defaults"].get("unit")
            assert unit in UNITS, f"{panel['title']}: unit {unit}"
        for override in panel["fieldConfig"].get("overrides", []):
            for unit in [p["value"] for p in override["properties"] if p["id"] == "unit"]:
                assert unit in UNITS, f"{panel['title']}: {override['matcher']} has unit {unit}"
        if panel["type"] == "timeseries":
            assert panel["options"]["legend"]["showLegend"], panel["title"]
            for target in panel["targets"]:
                if any(word in target["expr"] for word in (" by (", " by(")):
                    assert "{{" in target["legendFormat"], f"{panel['title']}: name the series in the legend"


SOURCES = typing.get_args(SelectionSource)


def source_names_in(node: Any) -> set[str]:
    """The selection sources a panel's field config (value mappings, overrides...) names as values."""
    if isinstance(node, dict):
        return set().union(*(source_names_in(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(source_names_in(value) for value in node))
    return {node} if node in SOURCES else set()


def test_sources_are_the_sdks() -> None:
    assert set(SOURCES) == {"request", "header", "env", "split", "default"}
    assert source_names_in({"a": [{"options": "split"}, "env", 3]}) == {"split", "env"}


def test_panels_showing_selection_sources_name_every_source(dashboard: dict[str, Any]) -> None:
    """A panel split by selection source explains each (split included), and maps all or none of them."""
    for panel in query_panels(dashboard):
        grouping = set().union(*(parse_promql(target["expr"])[1] for target in panel["targets"]))
        if "otel_llm_selection_source" in grouping:
            missing = [source for source in SOURCES if not re.search(rf"\b{source}\b", panel["description"])]
            assert not missing, f"{panel['title']}: the description does not name the sources {missing}"
        named = source_names_in(panel.get("fieldConfig", {}))
        assert not named or named == set(SOURCES), f"{panel['title']}: maps {sorted(named)}, not every source"


# Panel options the pinned Grafana (12.3) no longer has, by panel type.
DEAD_PANEL_OPTIONS = {
    # The table footer moved to the field config (custom.footer.reducers) in 12.2, grafana#102948.
    "table": {"footer"},
}


def test_panels_carry_no_dead_options(dashboard: dict[str, Any]) -> None:
    for panel in query_panels(dashboard):
        dead = set(panel.get("options", {})) & DEAD_PANEL_OPTIONS.get(panel["type"], set())
        assert not dead, f"{panel['title']}: {panel['type']} panels have no options {sorted(dead)} any more"


def test_latency_panels_have_exemplars_and_the_p95_target() -> None:
    latency = DASHBOARD_FILES["otel-llm-latency.json"]
    targets = 0
    for panel in query_panels(latency):
        if panel["type"] != "timeseries" or panel["fieldConfig"]["defaults"]["unit"] != "s":
            continue
        for target in panel["targets"]:
            if "histogram_quantile" in target["expr"]:
                assert target.get("exemplar") is True, f"{panel['title']}: exemplars link latency to traces"
                targets += 1
        if "P95" in panel["title"] and "2 s" in panel["title"]:
            defaults = panel["fieldConfig"]["defaults"]
            assert 2 in [step["value"] for step in defaults["thresholds"]["steps"]], panel["title"]
            assert defaults["custom"]["thresholdsStyle"]["mode"] != "off", panel["title"]
    assert targets >= 10
    titles = [panel["title"] for panel in query_panels(latency)]
    assert any("P95" in t and "2 s" in t for t in titles), "the 2 s P95 panel"
    exprs = " ".join(t["expr"] for p in query_panels(latency) for t in p["targets"])
    for metric in (
        "otel_llm_call_duration_seconds_bucket",
        "gen_ai_client_operation_duration_seconds_bucket",
        "gen_ai_client_operation_time_to_first_chunk_seconds_bucket",
    ):
        for quantile in ("0.5", "0.95", "0.99"):
            assert re.search(rf"histogram_quantile\({quantile}, [^;]*?{metric}", exprs), f"P{quantile} of {metric}"


def test_each_dashboard_covers_its_subject() -> None:
    def exprs(uid: str) -> str:
        return " ".join(t["expr"] for p in query_panels(DASHBOARD_FILES[f"{uid}.json"]) for t in p["targets"])

    cost, reliability = exprs("otel-llm-cost"), exprs("otel-llm-reliability")
    assert "* 3600" in cost and "[1d]" in cost, "USD per hour and per day"
    assert "by (otel_llm_api_name)" in cost and "by (otel_llm_model_alias)" in cost
    assert "by (gen_ai_token_type)" in cost and "1000 *" in cost
    for grouping in ("otel_llm_outcome", "error_type", "otel_llm_fallback_from, otel_llm_fallback_to",
                     "otel_llm_selection_source", "otel_llm_breaker_state"):  # fmt: skip
        assert f"by ({grouping})" in reliability or f", {grouping})" in reliability, grouping


EXPERIMENTS = "otel-llm-experiments.json"
# The experiments view's filter: the APIs that more than one alias answered in the dashboard's time range.
_MORE_THAN_ONE_ALIAS = re.compile(
    r" and on \(otel_llm_api_name\) \(count by \(otel_llm_api_name\) \(sum by \(otel_llm_api_name, "
    r"otel_llm_model_alias\) \(increase\(otel_llm_call_duration_seconds_count\{[^}]*\}\[\$__range\] @ end\(\)\)\) "
    r"> 0\) > 1\)$"
)
# What the experiments table compares per alias (SPEC §12), and the unit of each column.
EXPERIMENT_COLUMNS = {
    "Calls": "short",
    "P95 latency": "s",
    "Cost per call": "currencyUSD",
    "Error ratio": "percentunit",
}


def test_every_experiments_query_compares_aliases_of_apis_with_more_than_one() -> None:
    for panel in query_panels(DASHBOARD_FILES[EXPERIMENTS]):
        for target in panel["targets"]:
            where = f"{panel['title']} [{target['refId']}]"
            match = _MORE_THAN_ONE_ALIAS.search(target["expr"])
            assert match, f"{where}: no 'more than one alias' filter"
            compared = target["expr"][: match.start()]
            assert {"otel_llm_api_name", "otel_llm_model_alias"} <= parse_promql(compared)[1], f"{where}: per alias"
            if panel["type"] == "timeseries":
                assert "{{otel_llm_api_name}}" in target["legendFormat"], where
                assert "{{otel_llm_model_alias}}" in target["legendFormat"], where


def test_experiments_table_joins_one_column_per_query() -> None:
    [table] = [panel for panel in query_panels(DASHBOARD_FILES[EXPERIMENTS]) if panel["type"] == "table"]
    refs = [target["refId"] for target in table["targets"]]
    for target in table["targets"]:
        assert target["instant"] is True and target["range"] is False and target["format"] == "table", target["refId"]
        assert "[$__range]" in target["expr"], f"{target['refId']}: over the dashboard's time range"
    [merge, organize] = table["transformations"]
    assert merge["id"] == "merge", "the queries' frames become one row per (API, alias)"
    assert organize["id"] == "organize" and organize["options"]["excludeByName"] == {"Time": True}
    renamed = organize["options"]["renameByName"]
    assert renamed["otel_llm_api_name"] == "API" and renamed["otel_llm_model_alias"] == "Alias"
    columns = {renamed[f"Value #{ref}"]: ref for ref in refs}  # each query's value has a column name
    assert set(EXPERIMENT_COLUMNS) <= set(columns), sorted(columns)
    units = {}
    for override in table["fieldConfig"]["overrides"]:
        assert override["matcher"] == {"id": "byName", "options": override["matcher"]["options"]}
        column = override["matcher"]["options"]
        assert column in columns, f"an override for {column!r}, a column no query fills"
        properties = {p["id"]: p["value"] for p in override["properties"]}
        units[column] = properties["unit"]
        if properties["unit"] == "s":
            assert 2 in [step["value"] for step in properties["thresholds"]["steps"]], f"{column}: the 2 s target"
            assert properties["custom.cellOptions"]["type"] in {"color-text", "color-background"}, column
    assert {column: units.get(column) for column in EXPERIMENT_COLUMNS} == EXPERIMENT_COLUMNS
    exprs = {column: next(t["expr"] for t in table["targets"] if t["refId"] == ref) for column, ref in columns.items()}
    assert exprs["P95 latency"].startswith("histogram_quantile(0.95, ") and "call_duration" in exprs["P95 latency"]
    assert "otel_llm_cost_usd_total" in exprs["Cost per call"] and "otel_llm_call_duration" in exprs["Cost per call"]
    assert 'otel_llm_outcome="error"' in exprs["Error ratio"]


def test_p95_panels_with_the_2s_target_show_it() -> None:
    """Wherever a panel says "P95 ... 2 s", the 2 s threshold is drawn (every dashboard, not only latency)."""
    found = set()
    for dashboard in DASHBOARD_FILES.values():
        for panel in query_panels(dashboard):
            if "P95" in panel["title"] and "2 s" in panel["title"]:
                defaults = panel["fieldConfig"]["defaults"]
                assert defaults["unit"] == "s", panel["title"]
                assert 2 in [step["value"] for step in defaults["thresholds"]["steps"]], panel["title"]
                assert defaults["custom"]["thresholdsStyle"]["mode"] != "off", panel["title"]
                assert all(t.get("exemplar") is True for t in panel["targets"]), f"{panel['title']}: exemplars"
                found.add(dashboard["uid"])
    assert {"otel-llm-latency", "otel-llm-experiments"} <= found
    titles = {panel["title"] for panel in query_panels(DASHBOARD_FILES[EXPERIMENTS])}
    assert {"Aliases side by side", "Cost per call by alias", "P95 call latency by alias (target 2 s)"} <= titles


# ---------------------------------------------------------------------------- collector -> dashboards


def connector_metric_prefix(connector: str, config: dict[str, Any] | None) -> str:
    """The prefix, as Prometheus sees it, of the metric names a connector makes."""
    config = config or {}
    if kind(connector) == "spanmetrics":
        return re.sub(r"\W", "_", config.get("namespace", "traces.span.metrics")) + "_"
    if kind(connector) == "servicegraph":
        return "traces_service_graph_"
    raise AssertionError(f"{connector}: this test does not know which metrics it makes")


def test_connector_metric_prefix() -> None:
    assert connector_metric_prefix("spanmetrics", None) == "traces_span_metrics_"
    assert connector_metric_prefix("spanmetrics/x", {"namespace": "llm.red"}) == "llm_red_"


def test_every_connector_metric_is_on_a_dashboard(collector: dict[str, Any]) -> None:
    """A connector that makes metrics no dashboard queries only costs collector work and series."""
    queried = {
        name
        for dashboard in DASHBOARD_FILES.values()
        for _, expr in queries(dashboard)
        for name in parse_promql(expr)[0]
    }
    for connector, config in (collector.get("connectors") or {}).items():
        feeds = {kind(name) for name, p in pipelines(collector).items() if connector in p["receivers"]}
        if "metrics" not in feeds:
            continue
        prefix = connector_metric_prefix(connector, config)
        assert any(name.startswith(prefix) for name in queried), f"{connector}: no dashboard queries {prefix}*"
