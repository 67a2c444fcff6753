"""How `transducer --help` looks, and how its arguments are parsed where typer's defaults
do not fit.

Help that fits the terminal: options in panels, each a name column and a help column;
the name column is as wide as the command's longest name (`--[no-]bidirectional` stands
for the flag and its negation), so no name is ever cut; choices and defaults are part of
the help text, which rich wraps between words. Where the terminal leaves the help column
fewer than MIN_HELP_WIDTH characters, each option's help goes on the lines below its name
instead. A docstring's prose paragraphs flow to the width; its indented paragraphs
(examples) keep their lines, so an example is never wrapped in the middle of a command.

Argument errors are one line on stderr (`error: ... (see 'transducer train --help')`),
and a choice option's value is checked by its `Choice.check`, the check the Python API
makes too.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from pathlib import Path

import typer
from typer import _coercion  # Typer's runtime conversion of values (see _Plain)

from transducer.core.config import TransducerError

# rich is imported where help is drawn, not here: a command that only parses its
# arguments (predict in a pipe) never loads it.

# Typer ships its own copy of click; its exception classes are reached through public names.
_UsageError = typer.BadParameter.__mro__[1]
_ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")

MIN_HELP_WIDTH = 30  # help columns narrower than this are hard to read: help goes below names
ARGUMENTS, OPTIONS, COMMANDS = "Arguments", "Options", "Commands"  # panels with no name of their own
METAVARS = {int: "INT", float: "FLOAT", str: "TEXT", Path: "PATH"}  # by annotation, unless given


# --- choices -------------------------------------------------------------------------------


class ChoiceParser:
    """typer's `parser=` for an option with fixed values (a core.config.Choice): the value
    as a plain string, checked by `Choice.check`, whose message becomes the usage error.
    `choices` tells the help and shell completion the values."""

    __name__ = "choice"  # typer names the parameter type after its parser

    def __init__(self, choices, flag: str):
        self.choices, self.flag = choices, flag

    def __call__(self, value):
        try:
            return self.choices.check(value, self.flag)
        except TransducerError as e:
            raise _UsageError(str(e)) from None


def choice(choices, flag: str) -> dict:
    """typer.Option keywords for a Choice option `flag`: parsed by Choice.check, completed
    with its values."""
    return {"parser": ChoiceParser(choices, flag), "autocompletion": lambda: list(choices.values())}


def choices_of(param):
    """The Choice of a parameter built with `choice`, else None."""
    parser = getattr(getattr(param, "type_descriptor", None), "parameter_info", None)
    parser = getattr(parser, "parser", None)
    return parser.choices if isinstance(parser, ChoiceParser) else None


# --- the help text -------------------------------------------------------------------------


def reflow(help_text: str | None) -> str | None:
    """Join the lines of each prose paragraph (rich keeps single line breaks, which then
    leave ragged lines); indented paragraphs (examples) stay as written."""
    if not help_text:
        return help_text
    paragraphs = inspect.cleandoc(help_text).split("\n\n")
    return "\n\n".join(p if p.startswith(" ") else " ".join(p.split("\n")) for p in paragraphs)


def names(param, compact: bool = True) -> Text:
    """An option's names and value placeholder (`-m, --model-dir DIR`, `--[no-]force`, or
    not compact `--force, --no-force`), or an argument's name (`PAIRS`)."""
    from rich.text import Text

    if param.param_type_name == "argument":
        return Text(param.metavar or param.name.upper(), style="bold cyan")
    longs = [o for o in param.opts if o.startswith("--")]
    shorts = [o for o in param.opts if not o.startswith("--")]
    negations = list(param.secondary_opts)
    if compact and len(longs) == 1 and negations == ["--no-" + longs[0][2:]]:
        longs, negations = ["--[no-]" + longs[0][2:]], []
    text = Text(", ".join([*shorts, *longs, *negations]), style="bold cyan")
    placeholder = metavar(param)
    if placeholder:
        text.append(" " + placeholder, style="yellow")
    return text


def metavar(param) -> str:
    """The placeholder of an option's value: its own metavar, NAME for a choice, else its
    type's (INT, FLOAT, TEXT, PATH); none for a flag."""
    if getattr(param, "is_flag", False):
        return ""
    if param.metavar:
        return param.metavar
    if choices_of(param) is not None:
        return "NAME"
    annotation = param.type_descriptor.annotation
    return METAVARS.get(annotation, "VALUE")


def details(param) -> Text:
    """An option's help, then its values (unless the help names them all), its default and
    whether it is required."""
    from rich.text import Text

    text = Text(param.help or "")
    choices = choices_of(param)
    if choices is not None and not all(v in (param.help or "") for v in choices.values()):
        text.append(f" One of: {', '.join(choices.values())}.")
    shown = default(param)
    if shown is not None:
        text.append(f" [default: {shown}]", style="dim")
    if param.required:
        text.append(" [required]", style="dim red")
    return text


def default(param) -> str | None:
    """The default as the help shows it: on/off for a flag with a negation, none for a
    lone flag (--json) or an option without one."""
    if param.param_type_name == "argument" or param.default is None or param.required:
        return None
    if getattr(param, "is_flag", False):
        return ("on" if param.default else "off") if param.secondary_opts else None
    value = param.default
    return str(value.value if hasattr(value, "value") else value)


def panels(params) -> dict[str, list]:
    """Parameters by panel: arguments first, then the named panels in order, then the
    options with no panel."""
    grouped: dict[str, list] = {ARGUMENTS: []}
    for p in params:
        if getattr(p, "hidden", False):
            continue
        name = getattr(p, "rich_help_panel", None) or (ARGUMENTS if p.param_type_name == "argument" else OPTIONS)
        grouped.setdefault(name, []).append(p)
    grouped[OPTIONS] = grouped.pop(OPTIONS, [])
    return {k: v for k, v in grouped.items() if v}


def help_rows(command, ctx) -> list[tuple[str, str]]:
    """(names, help) of each shown parameter as --help shows them, in plain text, a flag's
    negation spelled out (the docs' command line reference is built from these)."""
    return [(names(p, compact=False).plain, details(p).plain) for section in panels(command.get_params(ctx)).values()
            for p in section]


def rows_panel(title: str, rows: list[tuple[Text, Text]], names_width: int, width: int) -> Panel:
    """A panel of (name, help) rows: two columns where the help column keeps
    MIN_HELP_WIDTH characters, else each help under its name."""
    from rich.padding import Padding
    from rich.panel import Panel
    from rich.table import Table

    if width - 4 - names_width - 2 >= MIN_HELP_WIDTH:
        table = Table.grid(padding=(0, 2), expand=True)
        table.add_column(width=names_width, no_wrap=True)
        table.add_column(ratio=1, overflow="fold")
        for name, said in rows:
            table.add_row(name, said)
    else:
        table = Table.grid(expand=True)
        table.add_column(overflow="fold")
        for name, said in rows:
            table.add_row(name)
            table.add_row(Padding(said, (0, 0, 0, 4)))
    return Panel(table, title=title, title_align="left", border_style="dim")


def print_help(command, ctx) -> None:
    """The whole --help of a command or of the group: usage, docstring, panels."""
    from rich.console import Console
    from rich.padding import Padding
    from rich.text import Text

    console = Console(highlight=False)
    usage = command.get_usage(ctx).removeprefix("Usage: ")
    console.print(Padding(Text.assemble(("Usage: ", "yellow"), (usage, "bold")), 1))
    docstring(console, command.help or "")
    grouped = panels(command.get_params(ctx))
    subcommands = getattr(command, "commands", {})
    rows = {title: [(names(p), details(p)) for p in params] for title, params in grouped.items()}
    if subcommands:
        rows[COMMANDS] = [(Text(name, style="bold cyan"), Text(first_paragraph(c.help)))
                          for name, c in subcommands.items() if not c.hidden]
    names_width = max(name.cell_len for section in rows.values() for name, _ in section)
    for title, section in rows.items():
        console.print(rows_panel(title, section, names_width, console.width))


def docstring(console: Console, help_text: str) -> None:
    """A command's docstring: the first paragraph, then the rest dimmed; prose wraps
    between words, an indented paragraph (an example) keeps its lines whole."""
    from rich.padding import Padding
    from rich.text import Text

    for k, paragraph in enumerate(inspect.cleandoc(help_text).split("\n\n")):
        if paragraph.startswith(" "):
            for line in paragraph.splitlines():
                console.print(Text(" " + line, style="dim"), soft_wrap=True)
        else:
            console.print(Padding(Text(paragraph, style="" if k == 0 else "dim"), (0, 1)))
        console.print()


def first_paragraph(help_text: str | None) -> str:
    return inspect.cleandoc(help_text or "").split("\n\n")[0].replace("\n", " ")


# --- the command classes -------------------------------------------------------------------


# Typer 0.29 converts every argument's text through a pydantic TypeAdapter, and importing
# pydantic is the largest single cost of a command's start (about 0.2 s of CPU: one line
# through `predict` took 0.57 s, bench/first_contact.py). The options here are plain str,
# int, float, bool and Path values and choices (ChoiceParser), which need no pydantic:
# _Plain converts those. Anything else (a range, another parser) keeps Typer's own.
_PLAIN = (str, int, float, bool, Path, list[Path])
_BOOLS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
_KINDS = {int: "a whole number", float: "a number", bool: "true or false"}  # for the error


@dataclasses.dataclass(frozen=True)
class _Plain(_coercion.RuntimeParam):
    """Typer's runtime conversion of one parameter, without pydantic."""

    parser: ChoiceParser | None = None  # a choice option's check, else None

    def _coerce_value(self, value, param, ctx):
        if self.annotation == list[Path]:
            return [Path(v) for v in value]
        if self.parser is not None:
            return self.parser(value)
        if type(value) is self.annotation:  # a default, a flag
            return value
        try:
            if self.annotation is bool:  # text for a flag (an environment variable, say)
                return _BOOLS[str(value).lower()]
            return self.annotation(value)
        except (KeyError, TypeError, ValueError):
            kind = _KINDS.get(self.annotation, self.annotation.__name__)
            raise typer.BadParameter(f"{value!r} is not {kind}", ctx=ctx, param=param) from None


def _plain_runtime_param(p) -> _Plain | None:
    """_Plain for a parameter of a plain type or a choice, else None (Typer's own)."""
    desc = getattr(p, "type_descriptor", None)
    if desc is None or getattr(p, "_runtime_param", None) is not None:
        return None
    info = desc.parameter_info
    parser = getattr(info, "parser", None)
    if parser is not None and not isinstance(parser, ChoiceParser):
        return None
    if any(getattr(info, name, None) is not None for name in ("min", "max", "click_type")):
        return None
    if desc.annotation not in _PLAIN or desc.file_annotation is not None:
        return None
    return _Plain(parameter_info=info, annotation=desc.annotation, parser=parser)


class _PlainFlags:
    """--help as print_help draws it; usage lines with arguments in capitals; plain values
    converted without pydantic (_plain_runtime_param)."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for p in params:
            if p.param_type_name == "argument" and p.metavar is None:
                p.metavar = p.name.upper()
            plain = _plain_runtime_param(p)
            if plain is not None:
                p._runtime_param = plain
        return params

    def format_help(self, ctx, formatter):
        print_help(self, ctx)


class Group(_PlainFlags, typer.core.TyperGroup):
    """Argument errors as one line on stderr (`error: ... (see 'transducer train --help')`),
    exit status 2, instead of a boxed panel: the same shape as every other error."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _ClickException as e:
            print(f"error: {one_line_message(e)}", file=sys.stderr)
            sys.exit(e.exit_code)
        except typer.Abort:
            print("interrupted", file=sys.stderr)
            sys.exit(130)
        # Without standalone mode click returns a typer.Exit's code, or the command's value.
        sys.exit(rv if isinstance(rv, int) else 0)


def one_line_message(e) -> str:
    """A click error in one line; usage errors point at the command's --help."""
    message = " ".join(e.format_message().replace("Value error, ", "").split())
    ctx = getattr(e, "ctx", None)
    if isinstance(e, _UsageError) and ctx is not None:
        message += f" (see '{ctx.command_path} --help')"
    return message


class Command(_PlainFlags, typer.core.TyperCommand):
    """Usage lines in the usual form: `transducer predict [OPTIONS] MODEL_DIR [FILE]`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.help = reflow(self.help)

    def collect_usage_pieces(self, ctx):
        pieces = [self.options_metavar] if self.options_metavar else []
        for p in self.get_params(ctx):
            if p.param_type_name == "argument":
                pieces.append(p.metavar if p.required else f"[{p.metavar}]")
        return pieces
