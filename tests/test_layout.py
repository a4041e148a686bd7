"""The package layout: no import cycles in `apps/` or `gru_core/`, counting imports made inside
functions too; no benchmark that imports a command-line module; builders that take the settings
the CLI fills, with none of their defaults written twice."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.util
import inspect
from pathlib import Path

import pytest

from apps.common.running import settings_from
from apps.common.seq2seq.model import build_seq2seq
from apps.common.seq2seq.settings import Seq2SeqTrain
from apps.common.seq2seq.training import train_seq2seq
from apps.registry import REGISTRY, load_app_packages
from apps.sentiment.model import build_model as build_sentiment_model
from apps.sentiment.settings import SentimentTrain
from apps.speech.model import build_model as build_speech_model
from apps.speech.settings import SpeechTrain
from apps.speech.training import train_speech_model
from apps.stock.model import build_model as build_stock_model
from apps.stock.model import train_forecaster
from apps.stock.settings import StockTrain
from apps.transcriber.model import build_acoustic_model
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


def _app_modules(app) -> list:
    """The modules of an app's package that build and train its models."""
    package = type(app).__module__.rsplit(".", 1)[0]
    names = [f"{package}.{role}" for role in ("model", "training")]
    if package in ("apps.translation", "apps.chatbot"):
        names += ["apps.common.seq2seq.model", "apps.common.seq2seq.training"]
    return [importlib.import_module(name) for name in names if importlib.util.find_spec(name)]


def test_builders_take_the_settings_and_repeat_none_of_their_defaults():
    """Every app's `build_*` and `train_*` functions leave each setting to the settings object."""
    load_app_packages()
    for name, app in REGISTRY.app_objects.items():
        # What --help shows is what the settings class declares.
        assert settings_from(app.Train, []) == app.Train(), name
        fields = {field.name for field in dataclasses.fields(app.Train)}
        for module in _app_modules(app):
            for function_name, function in vars(module).items():
                builds = function_name.startswith(("build_", "train_"))
                if not builds or not inspect.isfunction(function) or function.__module__ != module.__name__:
                    continue
                repeated = [parameter for parameter, value in inspect.signature(function).parameters.items()
                            if value.default is not inspect.Parameter.empty and parameter in fields]
                assert not repeated, f"{module.__name__}.{function_name} repeats {name}'s {repeated}"


@pytest.mark.parametrize("function, settings", [
    (build_speech_model, SpeechTrain),
    (train_speech_model, SpeechTrain),
    (build_acoustic_model, TranscriberTrain),
    (train_transcriber, TranscriberTrain),
    (build_sentiment_model, SentimentTrain),
    (build_stock_model, StockTrain),
    (train_forecaster, StockTrain),
    (build_seq2seq, Seq2SeqTrain),
    (train_seq2seq, Seq2SeqTrain),
])
def test_builders_take_the_settings_object_the_cli_fills(function, settings):
    annotations = [parameter.annotation for parameter in inspect.signature(function).parameters.values()]
    assert settings.__name__ in annotations, function.__name__
