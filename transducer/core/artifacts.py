"""The model directory: one documented contract, written atomically.

    DIR/
      config.json    schema_version, transducer_version, model (ModelConfig), train
                     (TrainConfig), input_vocab, output_vocab (id -> symbol lists), data
                     (the training files, counts and, for seq2seq, output_length: the
                     longest output decoding may write, see OutputLength);
                     a label model (--arch label) has labels (id -> label) instead of
                     output_vocab; an edit model (--arch edit) has actions instead: the
                     output characters whose SUBSTITUTE and INSERT actions, after the fixed
                     ones, make its action vocabulary (core/edits.EditActions)
      model.keras    the Keras model (architecture + weights), loaded in safe mode
      metrics.json   history (per-epoch lists) and final (best-epoch validation metrics)
      weights.npz    plain float arrays keyed by layer/weight name, for the TensorFlow-free
                     inference engine (see inference/numpy_engine.py)
      aligner.json   only for an edit model: the stochastic edit distance fitted on its
                     training pairs (core/edits.StochasticEditDistance.to_dict), which
                     gives the expert's optimal actions; fitted once per run and reused by
                     --resume (from DIR.partial/aligner.json), --init-from and every
                     --ensemble member. Predicting does not read it.
      members/       only in an ensemble (`train --ensemble N`): members/2/ ... members/N/,
        2/           each a complete model directory of the files above (member 2 on its own
        ...          is a usable model); the top level is member 1, and its config.json says
                     "ensemble": {"members": N, "seeds": [...]}. Directories without the key
                     are one model, as before. All members share the architecture and the
                     vocabularies (read_members checks); ensemble.py combines them.
                     An ASSEMBLED ensemble (`transducer assemble DIR... -m OUT`, `assemble`
                     below) has the same layout, copied from existing model directories (an
                     ensemble among them contributes all of its members), and "ensemble"
                     also says "assembled": true and "sources" (the directories, in member
                     order). Its members may differ in architecture, sizes and
                     vocabularies (e.g. seq2seq and edit members): only the normalization
                     form and max_len must agree, and string models never mix with label
                     models. Such members are combined by predict's --combine vote or
                     rescore (inference/combine.py; --combine auto rescores them); --combine mean needs one architecture
                     and one vocabulary (mean_conflict says why not).

A directory is staged in `DIR.partial/` next to DIR (same filesystem) and published with
rename(2): a crash leaves DIR as it was (the previous model, or nothing) and at worst a
`DIR.partial/` to resume from or delete. This module never imports TensorFlow, so reading
a config stays cheap; networks/saved.py loads model.keras.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from transducer._version import __version__
from transducer.core.config import ModelConfig, OutputLength, TransducerError
from transducer.core.edits import EditActions
from transducer.core.vocab import Labels, Vocab

SCHEMA_VERSION = 1
CONFIG, MODEL, METRICS, WEIGHTS = "config.json", "model.keras", "metrics.json", "weights.npz"
ALIGNER = "aligner.json"  # an edit model's fitted aligner (see the docstring)
MEMBERS = "members"  # an ensemble's members 2..N, each a model directory (see the docstring)


@dataclass(frozen=True)
class ModelInfo:
    """What config.json says about a model: enough to encode, decode and rebuild it."""

    path: Path  # the model directory
    model: ModelConfig  # architecture and sizes
    input_vocab: Vocab  # input characters
    output_vocab: Vocab | Labels | EditActions  # output characters (a label model's: its
    #                                            labels; an edit model's: its actions)
    raw: dict  # the whole config.json, for display


def staging_dir(model_dir: Path) -> Path:
    return model_dir.with_name(model_dir.name + ".partial")


def check_writable(model_dir: Path, force: bool) -> None:
    """Fail before training, not after, when the result could not be written."""
    if model_dir.exists() and not force:
        raise TransducerError(f"{model_dir}: already exists; pass --force to replace it")
    if model_dir.exists() and not model_dir.is_dir():
        raise TransducerError(f"{model_dir}: exists and is not a directory")
    parent = model_dir.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TransducerError(f"{parent}: cannot create directory ({e.strerror})") from None
    if not os.access(parent, os.W_OK):
        raise TransducerError(f"{parent}: not writable")


def config_dict(cfg: ModelConfig, input_vocab: Vocab, output_vocab: Vocab | Labels, train: dict, data: dict) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "transducer_version": __version__,
        "model": cfg.to_dict(),
        "train": train,
        "data": data,
        "input_vocab": input_vocab.to_json(),
        output_key(cfg): output_vocab.to_json(),
    }


def output_key(cfg: ModelConfig) -> str:
    """config.json's key for the output vocabulary: a label model lists labels, an edit
    model the output characters of its actions."""
    return {"label": "labels", "edit": "actions"}.get(cfg.arch, "output_vocab")


OUTPUT_TYPES = {"label": Labels, "edit": EditActions}  # arch -> its output vocabulary's type (else Vocab)


def write_json(path: Path, obj) -> None:
    """Write then rename, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def publish(staging: Path, model_dir: Path) -> None:
    """Atomically make `staging` the model directory, replacing an old one if present."""
    _fsync_tree(staging)
    if model_dir.is_dir() and _exchange(staging, model_dir):
        shutil.rmtree(staging, ignore_errors=True)  # it now holds the previous model
        return
    old = model_dir.with_name(model_dir.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    try:
        if model_dir.exists():
            os.rename(model_dir, old)
        os.rename(staging, model_dir)
    except OSError as e:
        if old.exists() and not model_dir.exists():
            os.rename(old, model_dir)  # put the previous model back
        raise TransducerError(f"{model_dir}: cannot publish the model ({e.strerror})") from None
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories in one step (Linux renameat2 RENAME_EXCHANGE), so no moment
    exists without a model directory. False where unsupported: the caller falls back to
    two renames."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0


def _fsync_tree(root: Path) -> None:
    for p in root.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())


def read_info(model_dir: str | Path) -> ModelInfo:
    """Validate and read config.json. No Keras import."""
    path = Path(model_dir)
    if not path.is_dir():
        raise TransducerError(f"{path}: no such model directory")
    cfg_path = path / CONFIG
    if not cfg_path.is_file():
        raise TransducerError(f"{path}: not a model directory ({CONFIG} is missing)")
    try:
        raw = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TransducerError(f"{cfg_path}: unreadable config ({e})") from None
    if not isinstance(raw, dict):
        raise TransducerError(f"{cfg_path}: config must be a JSON object")
    version = raw.get("schema_version")
    if not isinstance(version, int):
        raise TransducerError(f"{cfg_path}: missing schema_version")
    if version > SCHEMA_VERSION:
        raise TransducerError(
            f"{cfg_path}: schema_version {version} is newer than this transducer understands"
            f" ({SCHEMA_VERSION}); upgrade transducer"
        )
    try:
        model = ModelConfig.from_dict(raw["model"])
        input_vocab = Vocab.from_json(raw["input_vocab"])
        output_vocab = OUTPUT_TYPES.get(model.arch, Vocab).from_json(raw[output_key(model)])
    except (KeyError, TypeError, ValueError, TransducerError) as e:
        raise TransducerError(f"{cfg_path}: invalid config ({e})") from None
    if model.input_vocab_size != len(input_vocab) or model.output_vocab_size != len(output_vocab):
        raise TransducerError(f"{cfg_path}: vocabulary sizes disagree with the model sizes")
    return ModelInfo(path, model, input_vocab, output_vocab, raw)


def output_length(info: ModelInfo) -> OutputLength | None:
    """The output length bound training learned (config.json's "data" -> "output_length"), or None
    for a model directory written before it existed: that one decodes to max_len."""
    data = info.raw.get("data")
    if not isinstance(data, dict) or "output_length" not in data:
        return None
    try:
        return OutputLength.from_dict(data["output_length"])
    except ValueError as e:
        raise TransducerError(f"{info.path / CONFIG}: invalid config ({e})") from None


def read_aligner(model_dir: Path):
    """The fitted aligner an edit model was trained with (DIR/aligner.json)."""
    from transducer.core.edits import StochasticEditDistance

    path = Path(model_dir) / ALIGNER
    if not path.is_file():
        raise TransducerError(f"{model_dir}: {ALIGNER} is missing (an edit model's fitted aligner)")
    try:
        return StochasticEditDistance.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, ValueError) as e:  # JSONDecodeError is a ValueError
        raise TransducerError(f"{path}: unreadable aligner ({e})") from None


def member_count(info: ModelInfo) -> int:
    """1 for a plain model directory, N for an ensemble written by `train --ensemble N`."""
    ensemble = info.raw.get("ensemble")
    n = ensemble.get("members", 1) if isinstance(ensemble, dict) else 1
    if not isinstance(n, int) or n < 1:
        raise TransducerError(f"{info.path / CONFIG}: invalid ensemble member count {n!r}")
    return n


def member_dir(model_dir: Path, k: int) -> Path:
    """Member k's directory (1-based): the model directory itself for member 1."""
    return Path(model_dir) if k == 1 else Path(model_dir) / MEMBERS / str(k)


def read_members(info: ModelInfo) -> list[ModelInfo]:
    """Every member's ModelInfo, member 1 (`info` itself) first. Members of a trained
    ensemble must agree on the vocabularies and the architecture, or their per-step
    distributions cannot be combined; an assembled one's only on what combining their
    outputs needs (check_assembled)."""
    members = [info]
    for k in range(2, member_count(info) + 1):
        path = member_dir(info.path, k)
        if not (path / CONFIG).is_file():
            raise TransducerError(f"{info.path}: ensemble member {k} is missing ({path / CONFIG})")
        members.append(read_info(path))
    if is_assembled(info):
        check_assembled(members, lambda k: f"{info.path}: ensemble members 1 and {k}")
        return members
    for k, m in enumerate(members[1:], 2):
        what = _uniform_conflict(info, m)
        if what:
            raise TransducerError(
                f"{info.path}: ensemble members disagree on the {what} (member 1 and member {k},"
                f" {member_dir(info.path, k)}); members must be trained together with `train --ensemble N`"
            )
    return members


def is_assembled(info: ModelInfo) -> bool:
    """Whether the directory was put together by `assemble` (its members may differ)."""
    ensemble = info.raw.get("ensemble")
    return isinstance(ensemble, dict) and ensemble.get("assembled") is True


def _uniform_conflict(a: ModelInfo, b: ModelInfo) -> str | None:
    """What two models disagree on that a per-step (mean) combination needs shared, or None."""
    for what, x, y in (
        ("input vocabulary", a.input_vocab.symbols, b.input_vocab.symbols),
        ("output vocabulary", a.output_vocab.to_json(), b.output_vocab.to_json()),
        ("architecture", a.model, b.model),
    ):
        if x != y:
            return what
    return None


def mean_conflict(members: list[ModelInfo]) -> str | None:
    """Why these members cannot be combined per step (--combine mean), in a few words, or
    None when they can: they must share the architecture, sizes and vocabularies."""
    for k, m in enumerate(members[1:], 2):
        what = _uniform_conflict(members[0], m)
        if what == "architecture" and m.model.arch != members[0].model.arch:
            return f"its members are of different architectures ({members[0].model.arch} and {m.model.arch})"
        if what:
            return f"members 1 and {k} differ in their {what}"
    return None


def check_assembled(members: list[ModelInfo], where) -> None:
    """What every ensemble's members must share to be combined at all: the normalization
    form and max_len (so a line means the same to each), and strings or labels as output.
    where(k): how to name member k against member 1 in the error."""
    first = members[0].model
    for k, m in enumerate(members[1:], 2):
        for what, a, b in (
            ("normalization form (--normalize)", first.normalize, m.model.normalize),
            ("max_len", first.max_len, m.model.max_len),
            ("output kind (labels or strings)", first.arch == "label", m.model.arch == "label"),
        ):
            if a != b:
                raise TransducerError(f"{where(k)} differ in their {what}: {_show(a, what)} and {_show(b, what)}")


def _show(value, what: str) -> str:
    if what.startswith("output kind"):
        return "labels" if value else "strings"
    return str(value)


def assemble(sources: list[str | Path], out: str | Path, force: bool = False) -> Path:
    """Copy existing model directories into one ensemble directory `out` (see the module
    docstring): member 1 is the first source's (first) member, then every further member
    in order; an ensemble among the sources contributes all of its members. Staged and
    published atomically. Returns `out`."""
    out = Path(out)
    infos = [read_info(s) for s in sources]  # every source checked before anything is written
    members = [m for info in infos for m in read_members(info)]
    if len(members) < 2:
        raise TransducerError(f"assemble needs at least 2 models (members), got {len(members)}")
    names = [str(m.path) for m in members]
    check_assembled(members, lambda k: f"{names[0]} and {names[k - 1]}")
    check_writable(out, force)
    staging = staging_dir(out)
    shutil.rmtree(staging, ignore_errors=True)
    for k, m in enumerate(members, 1):
        target = member_dir(staging, k)
        shutil.copytree(m.path, target, ignore=shutil.ignore_patterns(MEMBERS))
        config = json.loads((target / CONFIG).read_text(encoding="utf-8"))
        config.pop("ensemble", None)  # each member on its own is one model
        if k == 1:
            seeds = [_seed(x.raw) for x in members]
            config["ensemble"] = {"members": len(members), "seeds": seeds, "assembled": True,
                                  "sources": [str(Path(s).resolve()) for s in sources]}
        write_json(target / CONFIG, config)
        metrics = read_metrics(target)
        if metrics.pop("ensemble", None) is not None:  # a source ensemble's combined scores
            write_json(target / METRICS, metrics)
    publish(staging, out)
    return out


def _seed(raw: dict):
    """A member's training seed (seed + member index, as train --ensemble seeds them), or None."""
    train = raw.get("train")
    if not isinstance(train, dict) or not isinstance(train.get("seed"), int):
        return None
    return train["seed"] + (train.get("member") or 0)


def read_metrics(model_dir: Path) -> dict:
    p = Path(model_dir) / METRICS
    if not p.is_file():
        return {}
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
