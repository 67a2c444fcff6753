"""The docs site cannot drift from the tool: it builds with `mkdocs build --strict` (no
broken link or anchor), its command line reference is generated from the Typer app, every
`transducer` command shown in the docs and the README names real options, and the shell
blocks the guides mark with `<!-- test -->` run, on tiny data.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import typer.main

from conftest import ROOT, invoke, subprocess_env
from transducer.cli import app

DOCS = ROOT / "docs"
MARK = "<!-- test -->"


def sh_blocks(text: str, marked_only: bool = False) -> list[str]:
    """The ```sh blocks of a markdown text (with `marked_only`, those right after MARK)."""
    blocks, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("```sh"):
            continue
        prev = next((l for l in reversed(lines[:i]) if l.strip()), "")
        if marked_only and prev.strip() != MARK:
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        blocks.append("\n".join(lines[i + 1 : end]))
    return blocks


def commands(block: str) -> list[str]:
    """One shell command per entry: continuation lines joined, comments dropped, `&&` split."""
    text = block.replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.split(" #")[0].strip() if not line.lstrip().startswith("#") else ""
        out += [c.strip() for c in line.split("&&") if c.strip()]
    return out


def transducer_calls(command: str) -> list[list[str]]:
    """The argument lists of the `transducer ...` calls in one shell command (pipes split)."""
    calls = []
    for part in command.split("|"):
        words = shlex.split(part)
        if words and words[0] == "transducer":
            calls.append(_without_redirections(words[1:]))
    return calls


def _without_redirections(words: list[str]) -> list[str]:
    out, skip = [], False
    for w in words:
        if skip:
            skip = False
        elif w in {">", "2>", "<", ">>", "2>>"}:
            skip = True
        elif not re.match(r"^\d?>>?\S|^<\S|^&$", w):
            out.append(w)
    return out


def doc_pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def pages_with_marked_blocks() -> list[Path]:
    return [p for p in doc_pages() if sh_blocks(p.read_text(encoding="utf-8"), marked_only=True)]


def load_hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "tools" / "docs_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- quick checks: no training, no subprocess ---------------------------------------------


def test_every_command_in_the_docs_names_real_options():
    """Each `transducer CMD --flag` in a shell block of the docs or the README is a real
    command with a real option (an option renamed in the CLI fails here, not in a reader's
    terminal)."""
    group = typer.main.get_command(app)
    root = typer.Context(group, info_name="transducer")
    known_global = {o for p in group.get_params(root) for o in p.opts + p.secondary_opts}
    checked = 0
    for page in doc_pages() + [ROOT / "README.md"]:
        for block in sh_blocks(page.read_text(encoding="utf-8")):
            for command in commands(block):
                for args in transducer_calls(command):
                    where = f"{page.relative_to(ROOT)}: transducer {' '.join(args)}"
                    if args[0].startswith("-"):
                        assert set(a for a in args if a.startswith("-")) <= known_global, where
                        continue
                    assert args[0] in group.commands, where
                    cmd = group.commands[args[0]]
                    ctx = typer.Context(cmd, info_name=args[0], parent=root)
                    options = {o for p in cmd.get_params(ctx) for o in p.opts + p.secondary_opts}
                    for a in args[1:]:
                        if a.startswith("-") and a != "-":
                            assert a.split("=")[0] in options, f"{where}: no option {a}"
                    checked += 1
    assert checked >= 20  # the guides hold many commands; finding none would mean a broken parser


def test_cli_reference_is_generated_from_the_app():
    """The reference page lists every command and every option the app has."""
    reference = load_hooks().cli_reference()
    group = typer.main.get_command(app)
    root = typer.Context(group, info_name="transducer")
    for name, cmd in group.commands.items():
        assert f"## `transducer {name}`" in reference
        ctx = typer.Context(cmd, info_name=name, parent=root)
        for p in cmd.get_params(ctx):
            for opt in p.opts:
                if opt.startswith("-"):
                    assert opt in reference, (name, opt)


def test_layout_page_covers_every_package():
    layout = load_hooks().package_layout()
    for pkg in (ROOT / "transducer").glob("*/__init__.py"):
        assert f"## `transducer.{pkg.parent.name}`" in layout
        for module in pkg.parent.glob("*.py"):
            if module.name != "__init__.py":
                assert f"| `{module.stem}` |" in layout, module


# --- the build and the marked examples ----------------------------------------------------


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path):
    """No broken link, anchor or reference (strict mode turns every warning into a failure)."""
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=ROOT, env=dict(subprocess_env(), NO_MKDOCS_2_WARNING="1"), capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "cli" / "index.html").is_file()


# The marked examples use the real settings; the test shrinks the work to seconds: every
# bundled data file cut to an even sample of TINY_ROWS lines, and these options rewritten.
TINY_ROWS = 120
TINY_OPTIONS = {"--epochs": "1", "--hidden": "8", "--ensemble": "2"}


def tiny_sample_data(dest: Path) -> None:
    dest.mkdir()
    for f in (ROOT / "sample_data").iterdir():
        if f.suffix in {".tsv", ".txt"}:
            lines = f.read_text(encoding="utf-8").splitlines(keepends=True)
            step = max(1, len(lines) // TINY_ROWS)
            (dest / f.name).write_text("".join(lines[::step][:TINY_ROWS]), encoding="utf-8")


def shrink(args: list[str]) -> list[str]:
    args = [TINY_OPTIONS.get(args[i - 1], a) if i else a for i, a in enumerate(args)]
    if args[0] == "train" and "--epochs" not in args:  # the default 30 would run to early stopping
        args += ["--epochs", "1"]
    return args


def run_command(command: str, cwd: Path) -> None:
    """`[producer |] transducer ARGS [> out] [2> log]` runs the CLI in-process (TensorFlow
    is imported once, not per command); anything else runs in bash."""
    if "transducer" not in shlex.split(command.replace("|", " | ")):
        subprocess.run(["bash", "-c", command], cwd=cwd, check=True, env=subprocess_env())
        return
    producer, _, call = command.rpartition("|")
    stdin = None
    if producer.strip():
        stdin = subprocess.run(["bash", "-c", producer], cwd=cwd, check=True, capture_output=True).stdout
    words = shlex.split(call)
    assert words[0] == "transducer", f"unsupported form (transducer must come last in a pipe): {command}"
    stdout_to = words[words.index(">") + 1] if ">" in words else None
    args = shrink(_without_redirections(words[1:]))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        result = invoke(*args, input=stdin)
    assert result.exit_code == 0, f"{command}\n{result.stderr[-2000:]}"
    if stdout_to:
        (cwd / stdout_to).write_text(result.stdout, encoding="utf-8")


@pytest.mark.slow
@pytest.mark.parametrize("page", pages_with_marked_blocks(), ids=lambda p: str(p.relative_to(DOCS)))
def test_marked_examples_run(page, tmp_path):
    tiny_sample_data(tmp_path / "sample_data")
    for block in sh_blocks(page.read_text(encoding="utf-8"), marked_only=True):
        for command in commands(block):
            run_command(command, tmp_path)


def test_the_guides_mark_examples():
    """Each guide and Getting started has at least one example a test runs."""
    marked = {p.relative_to(DOCS).as_posix() for p in pages_with_marked_blocks()}
    for page in ["getting-started.md", "guides/pronunciations.md", "guides/transliteration.md",
                 "guides/labels.md", "guides/ensembles.md", "guides/continuing.md"]:
        assert page in marked, page
