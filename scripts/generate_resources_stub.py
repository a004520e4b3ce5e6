"""Write ``otel_llm/_resources.pyi``: the SDK's generating methods, typed with ``model`` optional.

Run it after changing the ``openai`` version::

    python scripts/generate_resources_stub.py          # rewrite the stub
    python scripts/generate_resources_stub.py --check  # exit 1 if the stub is stale

At run time ``otel_llm._resources`` is the SDK's resource classes with
``model`` defaulted (the selection fills it). Type checkers need the same
methods with the SDK's exact arguments, overloads and return types, only
``model`` optional; Python's type system cannot derive that from the SDK's
signatures, so this script copies them out of the installed SDK's source:
docstrings and bodies dropped, ``model`` given the default ``omit``, and, for
the raw-response wrappers, the return type wrapped as the SDK's own wrapper
functions wrap it.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import openai

STUB = Path(__file__).resolve().parents[1] / "otel_llm" / "_resources.pyi"

_CHAT = "openai.resources.chat.chat"
_COMPLETIONS = "openai.resources.chat.completions.completions"
_EMBEDDINGS = "openai.resources.embeddings"
_RESPONSES = "openai.resources.responses.responses"
_CLIENT = "openai._client"

# How each raw-response wrapper of the SDK wraps a method's return type R.
_WRAPPED_RETURN = {
    "raw": "LegacyAPIResponse[{}]",
    "async_raw": "LegacyAPIResponse[{}]",
    "streaming": "ResponseContextManager[APIResponse[{}]]",
    "async_streaming": "AsyncResponseContextManager[AsyncAPIResponse[{}]]",
}
_WRAPPER_IMPORTS = {
    "raw": {("openai._legacy_response", "LegacyAPIResponse", None)},
    "async_raw": {("openai._legacy_response", "LegacyAPIResponse", None)},
    "streaming": {("openai._response", "APIResponse", None), ("openai._response", "ResponseContextManager", None)},
    "async_streaming": {
        ("openai._response", "AsyncAPIResponse", None),
        ("openai._response", "AsyncResponseContextManager", None),
    },
}


@dataclass(frozen=True)
class ClassSpec:
    """One class of the stub: the SDK class it stands for, and what it retypes."""

    name: str
    base: tuple[str, str]
    """(module, class) of the SDK class it is at run time, or subclasses."""
    methods: tuple[str, ...] = ()
    source: tuple[str, str] | None = None
    """(module, class) whose methods give the signatures; the base itself when ``None``."""
    variant: str = "plain"
    """``plain``, or how the SDK wraps the methods: ``raw``, ``streaming``, ``async_raw``, ``async_streaming``."""
    properties: dict[str, str] = field(default_factory=dict)
    """Cached properties retyped to another class of the stub."""


def _specs() -> list[ClassSpec]:
    specs: list[ClassSpec] = []
    for prefix, sync in (("", True), ("Async", False)):
        raw, streaming = ("raw", "streaming") if sync else ("async_raw", "async_streaming")
        completions = (_COMPLETIONS, f"{prefix}Completions")
        embeddings = (_EMBEDDINGS, f"{prefix}Embeddings")
        specs += [
            ClassSpec(
                f"{prefix}Completions",
                completions,
                ("create", "parse", "stream"),
                properties={
                    "with_raw_response": f"{prefix}CompletionsWithRawResponse",
                    "with_streaming_response": f"{prefix}CompletionsWithStreamingResponse",
                },
            ),
            ClassSpec(
                f"{prefix}CompletionsWithRawResponse",
                (_COMPLETIONS, f"{prefix}CompletionsWithRawResponse"),
                ("create", "parse"),
                completions,
                raw,
            ),
            ClassSpec(
                f"{prefix}CompletionsWithStreamingResponse",
                (_COMPLETIONS, f"{prefix}CompletionsWithStreamingResponse"),
                ("create", "parse"),
                completions,
                streaming,
            ),
            ClassSpec(
                f"{prefix}Chat",
                (_CHAT, f"{prefix}Chat"),
                properties={
                    "completions": f"{prefix}Completions",
                    "with_raw_response": f"{prefix}ChatWithRawResponse",
                    "with_streaming_response": f"{prefix}ChatWithStreamingResponse",
                },
            ),
            ClassSpec(
                f"{prefix}ChatWithRawResponse",
                (_CHAT, f"{prefix}ChatWithRawResponse"),
                properties={"completions": f"{prefix}CompletionsWithRawResponse"},
            ),
            ClassSpec(
                f"{prefix}ChatWithStreamingResponse",
                (_CHAT, f"{prefix}ChatWithStreamingResponse"),
                properties={"completions": f"{prefix}CompletionsWithStreamingResponse"},
            ),
            ClassSpec(
                f"{prefix}Embeddings",
                embeddings,
                ("create",),
                properties={
                    "with_raw_response": f"{prefix}EmbeddingsWithRawResponse",
                    "with_streaming_response": f"{prefix}EmbeddingsWithStreamingResponse",
                },
            ),
            ClassSpec(
                f"{prefix}EmbeddingsWithRawResponse",
                (_EMBEDDINGS, f"{prefix}EmbeddingsWithRawResponse"),
                ("create",),
                embeddings,
                raw,
            ),
            ClassSpec(
                f"{prefix}EmbeddingsWithStreamingResponse",
                (_EMBEDDINGS, f"{prefix}EmbeddingsWithStreamingResponse"),
                ("create",),
                embeddings,
                streaming,
            ),
            ClassSpec(f"{prefix}Responses", (_RESPONSES, f"{prefix}Responses"), ("stream",)),
            ClassSpec(
                f"{prefix}LLMClientWithRawResponse",
                (_CLIENT, f"{prefix}OpenAIWithRawResponse"),
                properties={"chat": f"{prefix}ChatWithRawResponse", "embeddings": f"{prefix}EmbeddingsWithRawResponse"},
            ),
            ClassSpec(
                f"{prefix}LLMClientWithStreamedResponse",
                (_CLIENT, f"{prefix}OpenAIWithStreamedResponse"),
                properties={
                    "chat": f"{prefix}ChatWithStreamingResponse",
                    "embeddings": f"{prefix}EmbeddingsWithStreamingResponse",
                },
            ),
        ]
    return specs


class _Module:
    """One SDK module's source: its classes' methods and the names its imports bind."""

    def __init__(self, name: str) -> None:
        module = importlib.import_module(name)
        self.name = name
        self.tree = ast.parse(inspect.getsource(module))
        self.package = module.__package__ or name
        self.imports: dict[str, tuple[str | None, str]] = {}
        """Name bound -> (module, name) of the import that binds it; module ``None`` for ``import name``."""
        for node in ast.walk(self.tree):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                source = importlib.util.resolve_name("." * node.level + (node.module or ""), self.package)
                for alias in node.names:
                    self.imports[alias.asname or alias.name] = (source, alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    self.imports[alias.asname or alias.name] = (None, alias.name)

    def methods(self, cls: str, name: str) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
        """The overloads of ``cls.name`` (or its one definition when it has none)."""
        found = [
            node
            for klass in self.tree.body
            if isinstance(klass, ast.ClassDef) and klass.name == cls
            for node in klass.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name
        ]
        if not found:
            raise LookupError(f"{self.name}.{cls}.{name} not found in the installed openai {openai.__version__}")
        overloads = [node for node in found if any(_is_overload(d) for d in node.decorator_list)]
        return overloads or found


def _is_overload(decorator: ast.expr) -> bool:
    return (isinstance(decorator, ast.Name) and decorator.id == "overload") or (
        isinstance(decorator, ast.Attribute) and decorator.attr == "overload"
    )


def _model_optional(function: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
    """Give a required ``model`` the default ``omit``, as the SDK types an optional argument."""
    arguments = function.args
    for index, argument in enumerate(arguments.kwonlyargs):
        if argument.arg == "model" and arguments.kw_defaults[index] is None:
            assert argument.annotation is not None
            argument.annotation = ast.BinOp(argument.annotation, ast.BitOr(), ast.Name("Omit"))
            arguments.kw_defaults[index] = ast.Name("omit")


def _stub_method(
    source: ast.FunctionDef | ast.AsyncFunctionDef, variant: str
) -> ast.FunctionDef | ast.AsyncFunctionDef:
    node = ast.parse(ast.unparse(source)).body[0]  # a copy
    assert isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    _model_optional(node)
    node.body = [ast.Expr(ast.Constant(...))]
    node.decorator_list = [d for d in node.decorator_list if _is_overload(d)]
    if variant != "plain":
        assert node.returns is not None
        node.returns = ast.parse(_WRAPPED_RETURN[variant].format(ast.unparse(node.returns)), mode="eval").body
        # The async raw wrapper awaits the method; the async streaming one returns a context manager.
        is_async = variant == "async_raw"
        kind = ast.AsyncFunctionDef if is_async else ast.FunctionDef
        node = ast.copy_location(
            kind(
                name=node.name, args=node.args, body=node.body, decorator_list=node.decorator_list, returns=node.returns
            ),
            node,
        )
    return node


def _names(nodes: Iterable[ast.AST]) -> set[str]:
    return {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name)}


def _signature(method: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[str]:
    """``method`` as stub lines, one parameter a line (as the SDK writes them)."""
    for decorator in method.decorator_list:
        yield f"    @{ast.unparse(decorator)}"
    arguments = method.args
    parameters = [argument.arg for argument in arguments.posonlyargs + arguments.args]  # self
    if arguments.kwonlyargs:
        parameters.append("*")
    for argument, default in zip(arguments.kwonlyargs, arguments.kw_defaults):
        assert argument.annotation is not None
        text = f"{argument.arg}: {ast.unparse(argument.annotation)}"
        parameters.append(text if default is None else f"{text} = {ast.unparse(default)}")
    keyword = "async def" if isinstance(method, ast.AsyncFunctionDef) else "def"
    assert method.returns is not None
    yield f"    {keyword} {method.name}("
    yield from (f"        {parameter}," for parameter in parameters)
    yield f"    ) -> {ast.unparse(method.returns)}: ..."


def _stub_lines(specs: list[ClassSpec]) -> Iterator[str]:
    modules: dict[str, _Module] = {}

    def module(name: str) -> _Module:
        if name not in modules:
            modules[name] = _Module(name)
        return modules[name]

    imports: set[tuple[str | None, str, str | None]] = {
        ("functools", "cached_property", None),
        ("typing", "Final", None),
        ("openai._types", "Omit", None),
        ("openai._types", "omit", None),
    }
    body: list[str] = []
    for spec in specs:
        base_module, base_class = spec.base
        base = f"_{base_module.rsplit('.', 1)[-1].strip('_')}_{base_class}"
        imports.add((base_module, base_class, base))
        body += ["", "", f"class {spec.name}({base}):"]
        source = module((spec.source or spec.base)[0])
        methods = [
            _stub_method(definition, spec.variant)
            for name in spec.methods
            for definition in source.methods((spec.source or spec.base)[1], name)
        ]
        imports.update((*source.imports[name], None) for name in _names(methods) if name in source.imports)
        if spec.variant != "plain":
            imports.update(_WRAPPER_IMPORTS[spec.variant])
        for method in methods:
            body += _signature(method)
        for name, our_class in spec.properties.items():
            body += ["    @cached_property", f"    def {name}(self) -> {our_class}: ..."]
    yield (
        '"""Types of ``otel_llm._resources``, generated from openai '
        f'{openai.__version__} by scripts/generate_resources_stub.py: do not edit."""'
    )
    yield ""
    yield from _import_lines(imports)
    yield ""
    yield "SELECTED_MODEL: Final[str]"
    yield ""
    yield "def is_selected(model: object) -> bool: ..."
    yield from body


def _import_lines(imports: set[tuple[str | None, str, str | None]]) -> Iterator[str]:
    by_module: dict[str, list[str]] = {}
    for source, name, alias in imports:
        if source is None:
            yield f"import {name}"
        else:
            by_module.setdefault(source, []).append(name if alias is None else f"{name} as {alias}")
    for source in sorted(by_module):
        names = sorted(set(by_module[source]))
        if len(names) == 1:
            yield f"from {source} import {names[0]}"
        else:
            yield f"from {source} import ("
            yield from (f"    {name}," for name in names)
            yield ")"


def render() -> str:
    return "\n".join(_stub_lines(_specs())) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the stub differs from what would be written")
    args = parser.parse_args()
    text = render()
    if args.check:
        if STUB.read_text() != text:
            print(f"{STUB} is stale for openai {openai.__version__}: run {sys.argv[0]}", file=sys.stderr)
            return 1
        return 0
    STUB.write_text(text)
    print(f"wrote {STUB} (openai {openai.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
