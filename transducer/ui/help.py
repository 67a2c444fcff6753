"""How `transducer --help` looks: arguments in capitals, flags without a value
placeholder, usage lines in the usual form, and docstrings whose prose paragraphs flow
to the terminal's width while example blocks (indented) keep their lines, so an example
is never wrapped in the middle of a command."""

from __future__ import annotations

import inspect
import sys

import typer

# Typer ships its own copy of click; its exception classes are reached through public names.
_UsageError = typer.BadParameter.__mro__[1]
_ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def reflow(help_text: str | None) -> str | None:
    """Join the lines of each prose paragraph (rich keeps single line breaks, which then
    leave ragged lines); indented paragraphs (examples) stay as written."""
    if not help_text:
        return help_text
    paragraphs = inspect.cleandoc(help_text).split("\n\n")
    return "\n\n".join(p if p.startswith(" ") else " ".join(p.split("\n")) for p in paragraphs)


class _PlainFlags:
    """--help with arguments in capitals and on/off flags without a value placeholder."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for p in params:
            if p.param_type_name == "argument" and p.metavar is None:
                p.metavar = p.name.upper()
            elif getattr(p, "is_bool_flag", False) and p.metavar is None:
                p.metavar = ""  # shown as nothing: a flag takes no value
        return params


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
