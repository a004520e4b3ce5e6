"""The ``otel-llm`` command: explain a selection, check the configuration,
serve the embedded server, run the demo, compare models."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from ._budgets import NANO_USD, budget_for, budget_key
from ._endpoints import key_env
from ._errors import ConfigError, StateUnavailableError, UnknownModelError
from ._selection import select_model, split_key_in, split_of
from ._settings import LLMSettings, api_variable
from ._state import process_store
from ._tables import print_table, usd

if TYPE_CHECKING:
    from ._compare import Comparison, Messages

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except (ConfigError, UnknownModelError, StateUnavailableError) as exc:
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
    server.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this PEM certificate (chain)")
    server.add_argument("--tls-key", metavar="FILE", help="its PEM private key (default: in the --tls-cert file)")
    server.set_defaults(run=_mock_server)

    demo = commands.add_parser("demo", help="run calls for several APIs against the embedded server")
    demo.add_argument("--forever", action="store_true", help="repeat the calls every second until Ctrl-C")
    demo.set_defaults(run=_demo)

    compare = commands.add_parser(
        "compare",
        help="send the same prompts through several aliases and compare them side by side",
        description="Send the same prompts through each alias, as configured, and print one row per alias: calls, "
        "errors, latency P50 / P95, time to first chunk, tokens, cost, and whether P95 is under 2 s. Each alias is "
        "pinned and its fallbacks are off (a comparison of A must not be answered by A's fallback), and so are the "
        "API's budget and allowlist (--calls bounds the spend); retries stay as configured (LLM_RETRY_ATTEMPTS). "
        "Calls are streamed chat completions.",
    )
    compare.add_argument("api", help="the API name the calls are made for, e.g. keywords")
    compare.add_argument(
        "--models",
        required=True,
        type=_aliases,
        metavar="A,B[,...]",
        help="two or more aliases, comma-separated",
    )
    compare.add_argument(
        "--prompts",
        type=_prompts,
        metavar="FILE",
        help="JSON lines, one chat messages list a line (default: a built-in set of 8 prompts)",
    )
    compare.add_argument(
        "--calls",
        type=_at_least_one,
        default=20,
        metavar="N",
        help="calls per alias, cycling the prompts (default: %(default)s)",
    )
    compare.add_argument(
        "--concurrency",
        type=_at_least_one,
        default=4,
        metavar="C",
        help="calls in flight at once (default: %(default)s)",
    )
    compare.add_argument(
        "--mock",
        action="store_true",
        help="run against the embedded server (no key, no network): configured aliases keep their provider and "
        "model, others are the demo's (gpt41-mini, gpt4o-2, ...) or an OpenAI model of that name",
    )
    compare.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")
    compare.set_defaults(run=_compare)
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
    budget = budget_for(args.api, settings)
    if budget is not None:
        past = f"then {budget.then}" if budget.then else "then BudgetExceededError"
        key, _ = budget_key(args.api, budget, time.time())
        store = process_store(settings.state_url, settings.state_failure)
        left = store.remaining(key, round(budget.usd * NANO_USD), time.time()) / NANO_USD
        where = "shared by every replica" if settings.state_url else "this process's own count: nothing spent yet"
        rows += [
            ("budget", f"${budget.usd:g} per {budget.window} (UTC), {past}"),
            ("budget left", f"${left:.6f} ({where})"),
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
    rows += [
        (f"budget {api}", f"${budget.usd:g} per {budget.window}" + (f", then {budget.then}" if budget.then else ""))
        for api, budget in sorted(settings.budgets.items())
    ]
    if settings.state_url:
        # A read of a key nobody writes: proves the server answers, in the closed mode's terms.
        process_store(settings.state_url, "closed").remaining("check", 1, time.time())
        from ._redis_state import server_name  # redis is imported only when a server is configured

        server = server_name(settings.state_url)
        rows.append(("state", f"{server} answers (LLM_STATE_FAILURE={settings.state_failure})"))
    _print_rows(rows)
    print("configuration OK")
    return 0


def _mock_server(args: argparse.Namespace) -> int:
    import ssl

    from .testing import MockLLMServer

    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            tls.load_cert_chain(args.tls_cert, args.tls_key)
        except OSError as exc:
            raise SystemExit(f"otel-llm mock-server: cannot load the TLS certificate and key: {exc}") from None
    elif args.tls_key:
        raise SystemExit("otel-llm mock-server: --tls-key needs --tls-cert")
    with MockLLMServer(host=args.host, port=args.port, reply_words=args.reply_words, tls=tls) as server:
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


def _aliases(value: str) -> list[str]:
    aliases = [alias.strip() for alias in value.split(",")]
    if any(not alias for alias in aliases):
        raise argparse.ArgumentTypeError(f"empty alias in {value!r} (expected A,B[,...])")
    repeated = sorted({alias for alias in aliases if aliases.count(alias) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(f"{', '.join(map(repr, repeated))} given twice")
    if len(aliases) < 2:
        raise argparse.ArgumentTypeError(f"needs two or more aliases to compare, got {value!r}")
    return aliases


def _at_least_one(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value!r}")
    return number


def _prompts(value: str) -> list[Messages]:
    from ._compare import PromptsError, load_prompts

    try:
        return load_prompts(value)
    except PromptsError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _compare(args: argparse.Namespace) -> int:
    from ._compare import BUILTIN_PROMPTS, mock_settings, run_comparison

    settings = LLMSettings()
    prompts = args.prompts or BUILTIN_PROMPTS
    progress = _Progress(f"compare {args.api}", sys.stderr)
    # Under --mock the aliases move to the embedded server for the run; else they are used as configured.
    chosen = mock_settings(settings, args.models) if args.mock else contextlib.nullcontext(settings)
    try:
        with chosen as run_settings:
            comparison = run_comparison(
                args.api,
                args.models,
                run_settings,
                prompts=prompts,
                calls=args.calls,
                concurrency=args.concurrency,
                progress=progress,
            )
    except KeyboardInterrupt:
        progress.interrupted()
        return 130
    if args.json:
        print(json.dumps(_comparison_json(comparison, mock=args.mock), indent=2))
    else:
        _print_comparison(comparison, mock=args.mock)
    return 0


class _Progress:
    """The progress line on stderr: redrawn in place on a terminal, else a line at each quarter."""

    _WIDTH = 24

    def __init__(self, label: str, stream: TextIO) -> None:
        self._label = label
        self._stream = stream
        self._tty = stream.isatty()
        self._quarter = 0

    def __call__(self, done: int, total: int, errors: int) -> None:
        filled = self._WIDTH * done // total
        line = f"{self._label} [{'#' * filled}{'.' * (self._WIDTH - filled)}] {done}/{total} calls, {errors} errors"
        if self._tty:
            self._stream.write(f"\r{line}" + ("\n" if done == total else ""))
        elif done == total or 4 * done // total > self._quarter:
            self._quarter = 4 * done // total
            self._stream.write(line + "\n")
        self._stream.flush()

    def interrupted(self) -> None:
        self._stream.write(("\n" if self._tty else "") + f"{self._label}: interrupted\n")


def _comparison_json(comparison: Comparison, mock: bool) -> dict[str, object]:
    """The ``--json`` document: stable keys, numbers as numbers, ``null`` when unknown."""
    from ._compare import P95_TARGET_S

    return {
        "api": comparison.api,
        "mock": mock,
        "calls_per_alias": comparison.calls_per_alias,
        "concurrency": comparison.concurrency,
        "prompts": comparison.prompts,
        "p95_target_s": P95_TARGET_S,
        "wall_s": comparison.wall_s,
        "aliases": [
            {
                "alias": row.alias,
                "provider": row.provider,
                "model": row.model,
                "calls": row.calls,
                "errors": row.errors,
                "error_types": dict(row.error_types),
                "latency_p50_s": row.latency_p50_s,
                "latency_p95_s": row.latency_p95_s,
                "time_to_first_chunk_p50_s": row.first_chunk_p50_s,
                "input_tokens": row.input_tokens,
                "output_tokens": row.output_tokens,
                "cost_per_call_usd": row.cost_per_call_usd,
                "cost_total_usd": row.cost_total_usd,
                "p95_under_2s": row.p95_under_target,
            }
            for row in comparison.aliases
        ],
    }


def _print_comparison(comparison: Comparison, mock: bool) -> None:
    where = "the embedded server" if mock else "the configured endpoints"
    print(
        f"compare {comparison.api}: {comparison.calls_per_alias} calls per alias, {comparison.prompts} prompts, "
        f"concurrency {comparison.concurrency}, on {where}; fallbacks off, retries as configured"
    )
    print("")
    header = (
        "alias",
        "provider",
        "model",
        "calls",
        "errors",
        "p50 s",
        "p95 s",
        "first chunk p50 s",
        "tokens in",
        "tokens out",
        "cost/call",
        "cost total",
        "p95 < 2 s",
    )
    body = [
        (
            row.alias,
            row.provider,
            row.model,
            str(row.calls),
            str(row.errors),
            _seconds(row.latency_p50_s),
            _seconds(row.latency_p95_s),
            _seconds(row.first_chunk_p50_s),
            _count(row.input_tokens),
            _count(row.output_tokens),
            usd(row.cost_per_call_usd),
            usd(row.cost_total_usd),
            "yes" if row.p95_under_target else "no",
        )
        for row in comparison.aliases
    ]
    print_table(header, body, text_columns=3)
    for row in comparison.aliases:
        if row.error_types:
            print(f"{row.alias} errors: " + ", ".join(f"{name} x{count}" for name, count in row.error_types))
    print("")
    print(
        f"{len(comparison.aliases) * comparison.calls_per_alias} calls in {comparison.wall_s:.1f} s; "
        "percentiles are nearest-rank over the calls that answered; '-' is unknown (e.g. an unpriced model)"
    )


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def _print_rows(rows: Sequence[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    sys.exit(main())
