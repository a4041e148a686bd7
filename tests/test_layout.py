"""The package layout: no import cycles in `apps/` or `gru_core/`, counting imports made inside
functions too; no benchmark that imports a command-line module; training defaults written once."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path

import pytest

from apps.speech.settings import SpeechTrain
from apps.stock.model import build_model as build_stock_model
from apps.stock.settings import StockTrain
from apps.speech.training import train_speech_model
from apps.transcriber.settings import TranscriberTrain
from apps.transcriber.training import train_transcriber

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("apps", "gru_core")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")}


def imported(path: Path, modules: set[str]) -> set[str]:
    """The project modules `path` imports anywhere in it (`from package import module` included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found & modules


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module, or of one importing itself (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in sorted(graph[module]):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                other = stack.pop()
                component.append(other)
                if other == module:
                    break
            if len(component) > 1 or module in graph[module]:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_cycles_finds_a_cycle_and_only_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_apps_or_gru_core():
    modules = project_modules()
    graph = {name: imported(path, set(modules)) - {name} for name, path in modules.items()}
    assert cycles(graph) == []


def test_no_benchmark_imports_a_command_line_module():
    modules = set(project_modules())
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        commands = sorted(m for m in imported(path, modules) if m.endswith(".commands") or m == "apps.cli")
        assert not commands, f"{path.name} imports {commands}"


# How a run goes (its strategy object, backups, progress output), handed over by `Fitting`.
RUN_PLUMBING = {"verbose", "strategy", "backup_dir", "checkpoint_every", "fresh"}


def _defaults(function) -> dict[str, object]:
    return {name: parameter.default for name, parameter in inspect.signature(function).parameters.items()
            if parameter.default is not inspect.Parameter.empty and name not in RUN_PLUMBING}


@pytest.mark.parametrize("function, settings, renamed", [
    (train_speech_model, SpeechTrain, {}),
    (train_transcriber, TranscriberTrain, {"recurrent_layers": "layers"}),
    (build_stock_model, StockTrain, {"num_features": None}),
])
def test_training_defaults_are_the_ones_help_shows(function, settings, renamed):
    fields = {field.name: field.default for field in dataclasses.fields(settings)}
    defaults = _defaults(function)
    assert defaults, function.__name__
    for name, default in defaults.items():
        if renamed.get(name, name) is not None:  # None: an argument the settings leave to the caller
            assert default == fields[renamed.get(name, name)], f"{function.__name__}({name}=...)"
