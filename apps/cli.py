"""The `gru-suite` command line, built from the command registry."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any, NoReturn

from apps.common.errors import InputError
from apps.registry import REGISTRY, Registry, load_app_packages


class OneLineErrorParser(argparse.ArgumentParser):
    """Reports a bad flag in one line (status 2), without the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(registry: Registry = REGISTRY) -> argparse.ArgumentParser:
    # allow_abbrev=False everywhere: `--epo` is refused, not taken for `--epochs`, so a script
    # keeps its meaning when a flag that shares the prefix is added.
    parser = OneLineErrorParser(
        prog="gru-suite",
        description="Train, export and serve GRU models for six applications.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"gru-suite {version('gru-suite')}")
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND")
    verbs.required = True
    for verb, help_text in sorted(registry.verb_help.items()):
        if verb in registry.top_commands:
            continue
        apps = registry.app_commands.get(verb, {})
        names = ", ".join(sorted(apps)) or "none registered yet"
        verb_parser = verbs.add_parser(
            verb, help=f"{help_text} (apps: {names})", description=help_text, allow_abbrev=False
        )
        app_parsers = verb_parser.add_subparsers(dest="app", metavar="APP")
        app_parsers.required = True
        for app, command in sorted(apps.items()):
            sub = app_parsers.add_parser(app, help=command.help, description=command.help, allow_abbrev=False)
            command.configure(sub)
            sub.set_defaults(command=command)
    for verb, command in sorted(registry.top_commands.items()):
        sub = verbs.add_parser(verb, help=command.help, description=command.help, allow_abbrev=False)
        command.configure(sub)
        sub.set_defaults(command=command)
    return parser


def _routing_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    parser.add_argument("--task")
    parser.add_argument("--model")
    return parser


def _export_app(model: str | None) -> str | None:
    """The app that made the export at `model`, if that can be read."""
    if model is None:
        return None
    # Imported here: it imports TensorFlow, which `main` imports quietly first.
    from apps.common.export import read_metadata, version_folder

    try:
        return read_metadata(version_folder(Path(model))).get("app")
    except Exception:  # not an export: the command itself reports what is wrong with it
        return None


def routed(argv: list[str], registry: Registry = REGISTRY) -> list[str]:
    """`argv` with its app replaced by the one `registry.route` picks (see `apps.registry`)."""
    if len(argv) < 2 or argv[1] not in registry.app_objects:
        return argv
    try:
        flags, _ = _routing_parser().parse_known_args(argv[2:])
    except argparse.ArgumentError:  # `--task` without a value: the full parser says so
        return argv
    app = registry.route(argv[0], argv[1], flags.task, lambda: _export_app(flags.model))
    return [argv[0], app, *argv[2:]]


def run(argv: Sequence[str], registry: Registry = REGISTRY) -> Any:
    """Parses `argv` (without the program name) and runs the command.

    Returns what the command returns, so that other commands (reproduce,
    compare) and tests can drive the CLI in-process.
    """
    args = build_parser(registry).parse_args(routed(list(argv), registry))
    if getattr(args, "strategy", None):
        from apps.common.distributed import make_strategy

        # A multi-worker strategy must exist before TensorFlow runs any op.
        make_strategy(args.strategy)
    return args.command.run(args)


def main(argv: Sequence[str] | None = None) -> int:
    # Before anything imports TensorFlow: its start-up lines are noise here.
    from apps.common.startup import import_tensorflow_quietly

    import_tensorflow_quietly()
    load_app_packages()
    try:
        run(sys.argv[1:] if argv is None else argv)
    except (InputError, FileNotFoundError) as error:
        print(f"gru-suite: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
