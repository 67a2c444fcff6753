"""`--help` that fits (ui/help.py): in a real 80- or 60-column terminal no option name,
choice or default is cut, no word is broken, examples keep their lines, and at 80
columns the help column stays readable; each command's help names only its own options."""

from __future__ import annotations

import re
import sys

import pytest
import typer
from typer.main import get_command

from conftest import run_in_pty, runner
from transducer.cli import app
from transducer.ui.help import MIN_HELP_WIDTH, choices_of, default, names

GROUP = get_command(app)
COMMANDS = {"": GROUP, **GROUP.commands}  # "": the group's own --help
BOX = "│╭╮╰╯─"

# Every command's --help, one after the other, in one process (one interpreter start).
ALL_HELP = r"""
import sys
from transducer.cli import app
for name in sys.argv[1:]:
    print("=== help of " + name, flush=True)
    try:
        app([*name.split(), "--help"], prog_name="transducer")
    except SystemExit:
        pass
    sys.stdout.flush()
"""


def shown_params(command):
    """The parameters --help lists (the help option included)."""
    root = typer.Context(GROUP, info_name="transducer", **GROUP.context_settings)  # -h, --help
    ctx = root if command is GROUP else typer.Context(command, info_name=command.name, parent=root)
    return [p for p in command.get_params(ctx) if not getattr(p, "hidden", False)]


@pytest.fixture(scope="module", params=[
    pytest.param(("pty", 80), marks=pytest.mark.slow), pytest.param(("pty", 60), marks=pytest.mark.slow),
    ("runner", 80), ("runner", 60),
], ids=lambda p: f"{p[0]}-{p[1]}")
def terminal(request) -> tuple[int, dict[str, list[str]]]:
    """(columns, command name -> the lines its --help drew that wide): in a real terminal
    (a pty: rich reads its size), or through CliRunner with COLUMNS (fast, the same layout)."""
    how, columns = request.param
    if how == "runner":
        return columns, {name: runner.invoke(app, [*name.split(), "--help"], env={"COLUMNS": str(columns)}).stdout.split("\n")
                         for name in COMMANDS}
    raw = run_in_pty([sys.executable, "-c", ALL_HELP, *(name or " " for name in COMMANDS)], columns)
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw).replace("\r", "")
    pages = re.split(r"^=== help of (.*)$", plain, flags=re.M)[1:]
    found = {name.strip(): page.split("\n") for name, page in zip(pages[::2], pages[1::2])}
    assert set(found) == set(COMMANDS), (list(found), plain[:2000])
    return columns, found


def words(lines: list[str]) -> set[str]:
    return set(" ".join(re.sub(f"[{BOX}]", " ", l) for l in lines).split())


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_fits_without_cutting_a_name_a_word_or_an_example(terminal, name):
    columns, pages = terminal
    lines, command = pages[name], COMMANDS[name]
    text = "\n".join(lines)
    assert "…" not in text and "Traceback" not in text, text
    examples = [l for l in (command.help or "").splitlines() if l.startswith("    ") and l.strip()]
    assert all(len(l) <= columns for l in lines), [l for l in lines if len(l) > columns]
    shown = {l.strip() for l in lines}
    assert all(l.strip() in shown for l in examples), (examples, text)  # each example line whole
    said = words(lines)
    for p in shown_params(command):
        shown_as = [p.metavar] if p.param_type_name == "argument" else [*p.opts, *p.secondary_opts]
        for flag in shown_as:  # --[no-]x stands for --x and --no-x
            assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text.replace("--[no-]", "--")) or \
                re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text.replace("--[no-]", "--no-")), (name, flag)
        # Every word of the help, the choices and the default stands whole somewhere: none was cut.
        missing = [w for w in (p.help or "").split() if w not in said]
        assert not missing, (p.name, missing, text)
        for value in (choices_of(p).values() if choices_of(p) else ()):
            assert re.search(rf"(?<![\w-]){re.escape(value)}(?![\w-])", text), (p.name, value)
        if default(p) is not None:
            assert f"{default(p)}]" in said, (p.name, default(p))
    for sub in getattr(command, "commands", {}):
        assert re.search(rf"│ {sub} ", text), sub


@pytest.mark.parametrize("name", list(COMMANDS))
def test_at_80_columns_help_text_is_at_least_30_characters_wide(terminal, name):
    columns, pages = terminal
    if columns != 80:
        pytest.skip("a readable width is asked of 80 columns")
    rows = 0
    for p in shown_params(COMMANDS[name]):
        first = names(p).plain
        line = next(l for l in pages[name] if l.startswith(f"│ {first} "))
        help_starts = len(line) - len(line[len(first) + 2:].lstrip())
        assert columns - 2 - help_starts >= MIN_HELP_WIDTH, line
        rows += 1
    assert rows >= 3


def test_a_narrow_terminal_puts_help_under_the_names():
    """40 columns leave no room for two columns: each help goes below its option, whole."""
    r = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "40"})
    assert r.exit_code == 0 and "…" not in r.stdout
    lines = r.stdout.splitlines()
    at = next(i for i, l in enumerate(lines) if l.startswith("│ --label-smoothing FLOAT"))
    assert lines[at].rstrip(" │") == "│ --label-smoothing FLOAT"
    assert lines[at + 1].startswith("│     Spread this share")
    said = words(lines)
    command = GROUP.commands["train"]
    assert all(w in said for p in command.params for w in (p.help or "").split())


@pytest.mark.parametrize("name", [n for n in COMMANDS if n])
def test_help_names_only_the_commands_own_options(name):
    command = COMMANDS[name]
    own = {o for p in command.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
    r = runner.invoke(app, [name, "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    mentioned = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", r.stdout.replace("--[no-]", "--")))
    assert mentioned <= own, mentioned - own
