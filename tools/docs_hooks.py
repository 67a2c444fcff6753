"""mkdocs hooks: pages that are generated at build time, never copied by hand.

A page holds a marker comment that this hook replaces:
- `<!-- generated: cli -->`: every command's usage, help and options, read from the Typer
  app the `transducer` command runs (so the reference cannot drift from `--help`);
- `<!-- generated: layout -->`: each package and module with its docstring, read with `ast`
  (nothing is imported, so building the docs never imports TensorFlow), and the import
  contract from pyproject.toml.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the docs extra installs tomli
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "transducer"


def on_page_markdown(markdown: str, page, config, files) -> str:
    if "<!-- generated: cli -->" in markdown:
        markdown = markdown.replace("<!-- generated: cli -->", cli_reference())
    if "<!-- generated: layout -->" in markdown:
        markdown = markdown.replace("<!-- generated: layout -->", package_layout())
    return markdown


# --- the command line --------------------------------------------------------------------


def cli_reference() -> str:
    if str(ROOT) not in sys.path:  # the checkout being documented, not another install
        sys.path.insert(0, str(ROOT))
    import typer
    import typer.main

    from transducer.cli import app

    group = typer.main.get_command(app)
    root = typer.Context(group, info_name="transducer")
    parts = [_command_section("transducer", group, root, heading="Global options")]
    for name, command in group.commands.items():
        ctx = typer.Context(command, info_name=name, parent=root)
        parts.append(_command_section(f"transducer {name}", command, ctx))
    return "\n\n".join(parts)


def _command_section(title: str, command, ctx, heading: str | None = None) -> str:
    usage = command.get_usage(ctx).removeprefix("Usage: ")
    lines = [f"## {heading or f'`{title}`'}", "", "```", usage, "```", ""]
    if command.help:
        lines += [_help_markdown(command.help), ""]
    from transducer.ui.help import help_rows

    rows = help_rows(command, ctx)  # the names and help --help shows
    if rows:
        lines += ["| argument or option | meaning |", "| --- | --- |"]
        lines += [f"| `{_code_cell(decl)}` | {_cell(text)} |" for decl, text in rows]
    return "\n".join(lines)


def _help_markdown(text: str) -> str:
    """A command's docstring as markdown: its indented examples become fenced shell blocks
    (copyable whole, never wrapped)."""
    out, in_code = [], False
    for line in text.replace("\b", "").splitlines():
        is_code = line.startswith("    ") and line.strip()
        if is_code and not in_code:
            out.append("```sh")
            in_code = True
        elif not is_code and in_code and line.strip():
            out.append("```")
            in_code = False
        out.append(line[4:] if is_code else line)
    if in_code:
        out.append("```")
    # a blank line inside a code block belongs there only when more code follows
    return re.sub(r"\n\n```\n", "\n```\n\n", "\n".join(out))


def _code_cell(text: str) -> str:
    """Inside backticks angle brackets show as typed; only a pipe would end the cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _cell(text: str) -> str:
    """Table-cell safe: pipes escaped, no newlines, angle brackets shown as text."""
    text = " ".join(text.split()).replace("|", "\\|")
    return text.replace("<", "&lt;").replace(">", "&gt;")


# --- the package layout ------------------------------------------------------------------


def package_layout() -> str:
    parts = []
    top = sorted(p for p in PACKAGE.glob("*.py") if p.name not in {"__main__.py", "_version.py"})
    parts.append(_module_table("transducer", _docstring(PACKAGE / "__init__.py"), [p for p in top if p.name != "__init__.py"]))
    for pkg in sorted(p.parent for p in PACKAGE.glob("*/__init__.py")):
        modules = sorted(m for m in pkg.glob("*.py") if m.name != "__init__.py")
        parts.append(_module_table(f"transducer.{pkg.name}", _docstring(pkg / "__init__.py"), modules))
    parts.append(_contracts())
    return "\n\n".join(parts)


def _module_table(name: str, doc: str, modules: list[Path]) -> str:
    lines = [f"## `{name}`", "", doc or "(no docstring)", ""]
    if modules:
        lines += ["| module | what it holds |", "| --- | --- |"]
        for m in modules:
            lines.append(f"| `{m.stem}` | {_cell(_first_paragraph(_docstring(m)))} |")
    return "\n".join(lines)


def _docstring(path: Path) -> str:
    return ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""


def _first_paragraph(doc: str) -> str:
    return doc.split("\n\n")[0] if doc else "(no docstring)"


def _contracts() -> str:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = cfg["tool"]["importlinter"]["contracts"]
    lines = ["## The import contract", "",
             "Checked by `lint-imports` (and `tests/test_layout.py`) from pyproject.toml's `[tool.importlinter]`:", ""]
    lines += [f"- {c['name']}" for c in contracts]
    return "\n".join(lines)
