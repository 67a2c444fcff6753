"""The package's layers (docs: Layout): the import contract in pyproject.toml holds, and no
module imports itself through others (no cycles)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from conftest import subprocess_env

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


# --- module names in docstrings and comments ------------------------------------------------

PACKAGE = REPO / "transducer"
NOT_OURS = ("keras", "tensorflow", "tf", "np", "numpy", "absl")  # names of other packages
FILE_SUFFIXES = ("json", "npz", "keras", "tsv", "txt", "md", "csv", "py", "log", "partial", "tmp")  # config.json, ...
FORMER = ("train", "train_ensemble", "tfimport")  # module names the package no longer has


def _prose(path: Path):
    """(line, text) of every docstring and comment in one source file."""
    import ast
    import io
    import tokenize

    source = path.read_text(encoding="utf-8")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                yield (node.body[0].lineno, doc)
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            yield (tok.start[0], tok.string)


def _stems() -> dict[str, list[str]]:
    """Each module's and subpackage's short name -> the dotted names it may stand for."""
    stems: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if len(parts) > 1:
            stems.setdefault(parts[-1], []).append(".".join(parts))
    return stems


def _resolves(dotted: str) -> bool:
    """Whether `transducer.a.b.c` is a module, or an attribute chain on one."""
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def _file_exists(name: str) -> bool:
    """`x/y.py` or `y.py`: a file of the repository whose path ends so."""
    if name.split("/")[0] in NOT_OURS:
        return True  # keras/src/...: another package's file
    return any(".venv" not in p.parts for p in REPO.glob(f"**/{name}"))


def _defined_names(package: str) -> set[str]:
    """The top-level functions and classes of a package's modules."""
    import ast

    names = set()
    for path in (PACKAGE / package).glob("*.py"):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
    return names


def _stale_former(head: str, rest: list[str], networks_names: set[str]) -> bool:
    """A reference to a module that was removed or renamed (git history): `train.x`,
    `train_ensemble.x`, `tfimport.x`; `model` is also what a Keras model is called, so
    `model.x` only where x is something networks/ defines (model.py's old contents)."""
    if head in FORMER:
        return True
    return head == "model" and rest[0] in networks_names


def stale_names(paths) -> list[str]:
    """Module names in the docstrings and comments of `paths` that name nothing in the
    package: a `transducer.x.y` (module or attribute), an `x/y.py` or `y.py` file, `x.y`
    where x is one of the package's module names and y is not in it, or a former module."""
    import re

    stems, networks_names = _stems(), _defined_names("networks")
    found = []
    for path in sorted(paths):
        where = path.relative_to(REPO) if path.is_relative_to(REPO) else path.name
        for line, text in _prose(path):
            for name in re.findall(r"(?<![\w./-])([\w/]+\.py)\b", text):
                if not _file_exists(name):
                    found.append(f"{where}:{line}: {name}")
            for chain in re.findall(r"(?<![\w./-])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)", text):
                head, *rest = chain.split(".")
                if rest[-1] in FILE_SUFFIXES or head in NOT_OURS:
                    continue
                if head == "transducer":
                    ok = _resolves(chain)
                elif head in stems:
                    ok = any(_resolves(".".join([full, *rest])) for full in stems[head])
                else:
                    ok = not _stale_former(head, rest, networks_names)
                if not ok:
                    found.append(f"{where}:{line}: {chain}")
    return found


def test_module_names_in_docstrings_and_comments_exist():
    assert stale_names(PACKAGE.rglob("*.py")) == []


def test_the_stale_name_finder_finds_stale_names(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        '"""Trained by train_ensemble.py and networks/nope.py, see engine.decode_probs,\n'
        'transducer.core.nope, transducer.core.config.Nope, cli.nope, model.layer_rows and\n'
        'train.train."""\n'
        "# fine: config.json, decode.py, inference/decode.py, transducer.core.config.ModelConfig,\n"
        "# probs.decode_probs, model.fit, tf.reverse_sequence, keras/src/x.py, networks.export\n"
    )
    assert [s.split(": ", 1)[1] for s in stale_names([probe])] == [
        "train_ensemble.py", "networks/nope.py", "engine.decode_probs", "transducer.core.nope",
        "transducer.core.config.Nope", "cli.nope", "model.layer_rows", "train.train",
    ]


def test_every_networks_module_but_the_gateway_is_under_the_tensorflow_contract():
    """The contract lists modules by name: a new networks module must be added to it."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    contracts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]["contracts"]
    [gateway] = [c for c in contracts if c["name"] == "Only the gateway imports TensorFlow within networks"]
    modules = {f"transducer.networks.{p.stem}" for p in (PACKAGE / "networks").glob("*.py")}
    assert set(gateway["source_modules"]) == modules - {"transducer.networks.tf", "transducer.networks.__init__"}


@pytest.mark.parametrize("argv", [["--help"], ["predict", "--help"], ["train", "--help"]])
def test_help_imports_neither_numpy_nor_tensorflow(argv):
    """`transducer --help` stays fast, and numpy is first imported by the engine, after
    the CLI has parsed its arguments (so nothing starts BLAS's threads before then)."""
    code = (
        "import sys\n"
        f"sys.argv = ['transducer', *{argv!r}]\n"
        "from transducer.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as e:\n"
        "    code = e.code\n"
        "print(code, sorted({'numpy', 'tensorflow', 'keras'} & set(sys.modules)), file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=subprocess_env())
    assert out.stderr.splitlines()[-1] == "0 []", out.stderr
