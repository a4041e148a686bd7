"""Every `gru-suite` command the README and the documentation show in a bash block still parses.

For each distinct command line, `gru-suite VERB [APP] --help` runs, and every
flag the line names must be one its command takes (after the routing the
registry does: `speech --task transcribe`, or a `--model` of another app's
export folder).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from apps import cli
from apps.registry import REGISTRY, load_app_packages

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BASH_BLOCK = re.compile(r"^[ \t]*```(?:bash|sh)\n(.*?)^[ \t]*```", re.S | re.M)
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def shown_commands() -> dict[str, tuple[str, list[str]]]:
    """`gru-suite` command lines in bash blocks: their text without comments, and their words, by first place."""
    found: dict[str, tuple[str, list[str]]] = {}
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for block in BASH_BLOCK.finditer(text):
            first_line = text[:block.start(1)].count("\n") + 1
            logical = block.group(1).replace("\\\n", " ")
            for offset, line in enumerate(logical.splitlines()):
                for segment in line.split("&&"):
                    words = shlex.split(segment, comments=True)
                    while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
                        words.pop(0)  # environment assignments (TF_CONFIG=...)
                    if words and Path(words[0]).name == "gru-suite" and len(words) > 1:
                        place = f"{page.relative_to(ROOT)}:{first_line + offset}"
                        for shown in _with_train_args(words[1:]):
                            found.setdefault(shlex.join(shown), (place, shown))
    return found


def _with_train_args(words: list[str]) -> list[list[str]]:
    """`words`, and for `compare`/`tune APP --train-args '...'` the `train APP ...` it passes on
    (its flags are train's, not the command's)."""
    if "--train-args" not in words:
        return [words]
    index = words.index("--train-args")
    inner = shlex.split(words[index + 1])
    return [words[:index] + words[index + 2:], ["train", words[1], *inner]]


COMMANDS = shown_commands()


def _command_words(words: list[str]) -> list[str]:
    """`VERB APP` (routed as `gru-suite` routes it) or `VERB` for a top-level command."""
    verb = words[0]
    if verb in REGISTRY.top_commands or len(words) < 2:
        return [verb]
    app, rest = words[1], words[2:]
    task = rest[rest.index("--task") + 1] if "--task" in rest else None
    model = Path(rest[rest.index("--model") + 1]).name if "--model" in rest else None
    return [verb, REGISTRY.route(verb, app, task, lambda: model)]


def test_the_pages_show_commands_of_every_app():
    load_app_packages()
    shown = {tuple(_command_words(words)) for _, words in COMMANDS.values()}
    assert {("train", app) for app in REGISTRY.app_objects} <= shown


@pytest.mark.parametrize("command", sorted(COMMANDS), ids=[COMMANDS[c][0] for c in sorted(COMMANDS)])
def test_a_shown_command_parses_and_names_only_flags_it_takes(command, capsys):
    load_app_packages()
    place, words = COMMANDS[command]
    command_words = _command_words(words)
    with pytest.raises(SystemExit) as exit_info:
        cli.run([*command_words, "--help"])
    help_text = capsys.readouterr().out
    assert exit_info.value.code == 0, f"{place}: gru-suite {' '.join(command_words)} --help failed"
    taken = set(FLAG.findall(help_text))
    unknown = sorted(set(FLAG.findall(" ".join(words))) - taken - {"--help"})
    assert not unknown, f"{place}: gru-suite {' '.join(command_words)} takes no {', '.join(unknown)}"
