"""The command registry that application packages join.

A package `apps/<name>/` registers its commands when its `app` module (an
app's) or `commands` module (the suite's own commands) is imported: an app
through `apps.common.running.register_app`, which registers `train`,
`evaluate`, `predict` (and `explain`); other commands through
`register(...)`. `gru-suite VERB APP ...` then dispatches to the
command registered for (VERB, APP); commands registered with `app=None` are
top-level (`gru-suite chat ...`).

Apps that serve tasks of one family (the speech app's words, the
transcriber's transcripts) declare a `Task`; the registry routes
`VERB APP --task TASK` to the app of that task, and `evaluate|predict APP
--model DIR` to the family member that made the export in DIR.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

# Verbs every app is expected to offer, listed in `gru-suite --help` even
# before any app registers them.
CORE_VERBS = {
    "train": "train a model and export it as a SavedModel",
    "evaluate": "evaluate an exported model on a data set",
    "predict": "run an exported model on raw inputs",
    "explain": "plot what a model's gates or attention did on an input, as a PNG",
}


@dataclass(frozen=True)
class Command:
    """One CLI command.

    Attributes:
        verb: The first word after `gru-suite` (`train`, `chat`, ...).
        app: The app it belongs to (the second word), or None for a
            top-level command.
        help: One line for `--help`.
        configure: Adds the command's arguments to its parser.
        run: Runs the command on the parsed arguments. Its return value is
            handed to the caller of `apps.cli.run` (train returns a
            `apps.common.training.TrainReport`).
        quick_args: For train commands: extra arguments that make a run of
            a minute or so (`gru-suite reproduce --quick`).
        demo: For train commands: loads an export folder, runs it on a few
            raw inputs and returns a one-line description of what it said.
    """

    verb: str
    app: str | None
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], Any]
    quick_args: tuple[str, ...] = ()
    demo: Callable[[str], str] | None = None


@dataclass(frozen=True)
class Task:
    """An app's place in a family of apps that one command name reaches with `--task`.

    Attributes:
        family: The app name users type (`speech`).
        name: This app's value of `--task` (`transcribe`).
        help: What the task does, for `--help`.
    """

    family: str
    name: str
    help: str


@dataclass
class Registry:
    """The one registry: the commands by verb (and app), and the app objects by name."""

    app_commands: dict[str, dict[str, Command]] = field(default_factory=dict)
    top_commands: dict[str, Command] = field(default_factory=dict)
    verb_help: dict[str, str] = field(default_factory=lambda: dict(CORE_VERBS))
    # `apps.common.app.App` instances (typed loosely: that module imports this one).
    app_objects: dict[str, Any] = field(default_factory=dict)
    # family -> task name -> (the app that serves it, its Task).
    families: dict[str, dict[str, tuple[str, Task]]] = field(default_factory=dict)

    def add_app(self, name: str, app: Any, task: Task | None = None) -> None:
        if name in self.app_objects:
            raise ValueError(f"App {name!r} is already registered.")
        if task is not None:
            members = self.families.setdefault(task.family, {})
            if task.name in members:
                raise ValueError(f"Task {task.name!r} of {task.family!r} is already registered.")
            members[task.name] = (name, task)
        self.app_objects[name] = app

    def family_of(self, app: str) -> dict[str, tuple[str, Task]]:
        """The tasks of `app`'s family (empty if it belongs to none)."""
        for members in self.families.values():
            if any(member == app for member, _ in members.values()):
                return members
        return {}

    def route(self, verb: str, app: str, task: str | None, export_app: Callable[[], str | None]) -> str:
        """The app that runs `VERB APP`: the one serving `task`, else the maker of the export.

        `export_app` reads which app made the export the command names
        (None when it names none or it cannot be read); it is called only
        for `evaluate`, `predict` and `explain` in a family.
        """
        members = self.family_of(app)
        if task is not None and task in members:
            return members[task][0]
        if task is None and verb != "train" and members:
            made_by = export_app()
            if any(member == made_by for member, _ in members.values()):
                return made_by
        return app

    def register(self, command: Command) -> Command:
        if command.app is None:
            if command.verb in self.top_commands or command.verb in self.app_commands:
                raise ValueError(f"Command {command.verb!r} is already registered.")
            self.top_commands[command.verb] = command
            return command
        if command.verb in self.top_commands:
            raise ValueError(f"{command.verb!r} is already a top-level command.")
        per_app = self.app_commands.setdefault(command.verb, {})
        if command.app in per_app:
            raise ValueError(
                f"Command {command.verb!r} for app {command.app!r} is already registered."
            )
        per_app[command.app] = command
        self.verb_help.setdefault(command.verb, command.help)
        return command

    def apps(self) -> list[str]:
        return sorted({app for per_app in self.app_commands.values() for app in per_app})

    def lookup(self, verb: str, app: str | None) -> Command:
        if app is None:
            return self.top_commands[verb]
        return self.app_commands[verb][app]


REGISTRY = Registry()


def register(command: Command) -> Command:
    """Adds `command` to the global registry (called as `apps/<name>/app.py` or `commands.py` is imported)."""
    return REGISTRY.register(command)


REGISTERING_MODULES = ("app", "commands")


def load_app_packages() -> list[str]:
    """Imports `apps.<name>.app` or `apps.<name>.commands` of every package; returns their names."""
    import apps

    loaded = []
    for module in sorted(pkgutil.iter_modules(apps.__path__), key=lambda m: m.name):
        if not module.ispkg:
            continue
        for name in REGISTERING_MODULES:
            registering = f"apps.{module.name}.{name}"
            if importlib.util.find_spec(registering) is not None:
                importlib.import_module(registering)
                loaded.append(module.name)
                break
    return loaded
