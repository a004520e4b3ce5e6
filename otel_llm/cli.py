"""The ``otel-llm`` command: explain a selection, check the configuration,
serve the embedded server, run the demo."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Sequence

from ._endpoints import key_env
from ._errors import ConfigError, UnknownModelError
from ._selection import select_model, split_key_in, split_of
from ._settings import LLMSettings, api_variable

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except (ConfigError, UnknownModelError) as exc:
        print(f"otel-llm: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="otel-llm", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    resolve = commands.add_parser("resolve", help="explain which model an API gets, and why")
    resolve.add_argument("api", help="the API name, e.g. keywords")
    resolve.add_argument("--model", help="a request_model, as a caller would pass it")
    resolve.add_argument(
        "--header", action="append", default=[], metavar="NAME=VALUE", help="a request header, e.g. X-LLM-Model=gpt41"
    )
    resolve.add_argument("--split-key", help="the key a split assigns (a user id), as split_key= or X-LLM-Split-Key")
    resolve.set_defaults(run=_resolve)

    check = commands.add_parser("check", help="validate the configuration (exit 1 on the first problem)")
    check.set_defaults(run=_check)

    server = commands.add_parser("mock-server", help="serve the embedded OpenAI-compatible server")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=8000, help="0 picks a free port (default: %(default)s)")
    server.add_argument("--reply-words", type=int, default=16, help="words (chunks) per reply (default: %(default)s)")
    server.set_defaults(run=_mock_server)

    demo = commands.add_parser("demo", help="run calls for several APIs against the embedded server")
    demo.add_argument("--forever", action="store_true", help="repeat the calls every second until Ctrl-C")
    demo.set_defaults(run=_demo)
    return parser


def _resolve(args: argparse.Namespace) -> int:
    headers = []
    for item in args.header:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"otel-llm resolve: --header takes NAME=VALUE, got {item!r}")
        headers.append((name.strip(), value.strip()))
    settings = LLMSettings()
    selection = select_model(
        args.api, request_model=args.model, headers=headers, settings=settings, split_key=args.split_key
    )
    endpoint = settings.endpoints[selection.model]
    variable = key_env(endpoint)
    rows = [
        ("api", selection.api_name),
        ("alias", selection.model),
        ("source", f"{selection.source} ({_explain(selection.source, args.api)})"),
    ]
    split = split_of(args.api, settings)
    if split is not None:
        rows.append(("split", ", ".join(f"{alias} {split.share(alias):.0%}" for alias in split.weights)))
        if selection.source == "split":
            has_key = args.split_key is not None or split_key_in(headers) is not None
            rows.append(("split key", "given: the same key always gets this alias" if has_key else _NO_KEY))
    rows += [
        ("provider", endpoint.provider),
        ("model sent", endpoint.request_model),
        ("canonical model", endpoint.model),
        ("endpoint", endpoint.url),
        ("api key", f"from {variable} ({'set' if os.environ.get(variable) else 'NOT SET'})"),
        ("fallbacks", " -> ".join(settings.fallback_chain(selection.model)) or "(none)"),
    ]
    _print_rows(rows)
    return 0


def _explain(source: str, api: str) -> str:
    return {
        "request": "--model, ENABLE_LLM_MODEL_OVERRIDE is on",
        "header": "X-LLM-Model header, ENABLE_LLM_MODEL_HEADER is on",
        "env": api_variable(api),
        "split": "LLM_SPLITS",
        "default": "LLM_MODEL_DEFAULT",
    }[source]


_NO_KEY = "none: each call draws at random (give --split-key to see a key's alias)"


def _check(args: argparse.Namespace) -> int:
    settings = LLMSettings()
    missing = sorted(
        {
            f"{key_env(endpoint)} (alias {alias!r})"
            for alias, endpoint in settings.endpoints.items()
            if not os.environ.get(key_env(endpoint))
        }
    )
    if missing:
        print(f"otel-llm: API key variable not set: {', '.join(missing)}", file=sys.stderr)
        return 1
    rows = [("default", settings.model_default or "(none: every API needs its LLM_MODEL_<API>)")]
    rows += [(variable, alias) for variable, alias in sorted(settings.api_models.items())]
    rows += [
        (f"split {api}", ", ".join(f"{alias} {weight:g}" for alias, weight in weights.items()))
        for api, weights in sorted(settings.splits.items())
    ]
    rows += [(f"allowed {api}", ", ".join(aliases)) for api, aliases in sorted(settings.allowed_models.items())]
    rows += [
        (f"alias {alias}", f"{endpoint.provider} {endpoint.request_model} at {endpoint.url}")
        for alias, endpoint in sorted(settings.endpoints.items())
    ]
    rows += [(f"fallback {alias}", " -> ".join(chain)) for alias, chain in sorted(settings.fallbacks.items())]
    if settings.config_reload_s:
        rows.append(("reload", f"{settings.config_file} checked every {settings.config_reload_s:g} s"))
    _print_rows(rows)
    print("configuration OK")
    return 0


def _mock_server(args: argparse.Namespace) -> int:
    from .testing import MockLLMServer

    with MockLLMServer(host=args.host, port=args.port, reply_words=args.reply_words) as server:
        print(f"OpenAI-compatible server on {server.base_url} (Azure shape: {server.azure_endpoint})", flush=True)
        print("Ctrl-C stops it.", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    return 0


def _demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    run_demo(forever=args.forever)
    return 0


def _print_rows(rows: Sequence[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    sys.exit(main())
