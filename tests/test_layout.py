"""The package's layers (docs: Layout): the import contract in pyproject.toml holds, and no
module imports itself through others (no cycles)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

REPO = Path(__file__).resolve().parents[1]


def test_the_import_contract_holds():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    out = subprocess.run([exe, "--config", str(REPO / "pyproject.toml")], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), over the direct
    imports between transducer's modules, function-level imports included."""
    modules = sorted(m for m in graph.modules if m.startswith("transducer"))
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.find_modules_directly_imported_by(v)):
            if not w.startswith("transducer") or w == "transducer":
                continue  # the root package only re-exports the API lazily
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for m in modules:
        if m not in index:
            visit(m)
    return found


def test_no_import_cycles():
    graph = grimp.build_graph("transducer")
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle(tmp_path, monkeypatch):
    pkg = tmp_path / "transducer_cycle_probe"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from transducer_cycle_probe import b\n")
    (pkg / "b.py").write_text("def f():\n    from transducer_cycle_probe import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("transducer_cycle_probe", cache_dir=None)
    assert _cycles(graph) == [["transducer_cycle_probe.a", "transducer_cycle_probe.b"]]


@pytest.mark.parametrize("package", ["core", "networks", "inference", "training", "ui"])
def test_every_package_says_why_it_exists(package):
    import importlib

    doc = importlib.import_module(f"transducer.{package}").__doc__ or ""
    assert len(doc.split()) >= 15, f"transducer.{package} needs a docstring saying why it exists"
