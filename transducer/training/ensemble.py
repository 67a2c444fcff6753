"""`train --ensemble N`: N members trained one after the other into one model directory.

Member k (1-based) is an ordinary training run (loop.train) with TrainConfig.member =
k - 1: its weights and shuffling are seeded with --seed + k - 1, while the validation
split stays --seed's, so every member sees the same training and validation pairs and
the same vocabularies (which inference/ensemble.py needs to combine them). The pairs are
scanned (validated, split, counted) once per run, and the scan handed to every member
and to the ensemble's own validation.

While it runs, member k is trained and published into DIR.partial/members/k/ (its own
checkpoints in DIR.partial/members/k.partial/, exactly as for one model). When all N are
done, member 1 becomes DIR.partial/final/ and members 2..N its final/members/k/, the
ensemble's decoded validation metrics are added, and final/ is published to DIR with one
rename (artifacts.publish), as for one model.

Stopping: Ctrl-C or SIGTERM interrupts the member in training (its checkpoint is kept,
as for one model); finished members stay in DIR.partial/members/, DIR is left as it was,
and the same command with --resume skips the finished members, resumes the interrupted
one from its checkpoint and trains the rest.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from transducer.core import artifacts
from transducer.training import checkpoint, stream
from transducer.core.config import ModelConfig, TrainConfig, TransducerError
from transducer.inference.evaluate import decoded_metrics, evaluate_pairs
from transducer.inference.predict import Predictor
from transducer.training.loop import held_out_pairs, scan_data, train

MEMBERS_STAGING = "members"  # DIR.partial/members/k/: members while the ensemble trains


@dataclass
class EnsembleResult:
    model_dir: Path  # where the ensemble was published (or would have been, if interrupted)
    members: list = field(default_factory=list)  # loop.TrainResult per member trained in this run
    skipped: list[int] = field(default_factory=list)  # members already finished before --resume
    final: dict = field(default_factory=dict)  # the ensemble's decoded validation metrics
    interrupted: bool = False  # a signal stopped member len(skipped) + len(members)
    signal: str | None = None  # "SIGINT" or "SIGTERM" when interrupted
    staging: Path | None = None  # when interrupted: DIR.partial, where --resume goes on


def member_seeds(train_cfg: TrainConfig) -> list[int]:
    return [train_cfg.seed + k for k in range(train_cfg.ensemble)]


def _prepare_staging(model_dir: Path, train_cfg: TrainConfig, force: bool, resume: bool) -> Path:
    """The staging directory for an ensemble run, checked: resumable when resume, else empty
    (an interrupted run in it is replaced only with force)."""
    if train_cfg.distribute == "multi-worker":
        raise TransducerError("--ensemble cannot be combined with --distribute multi-worker; use one machine")
    staging = artifacts.staging_dir(model_dir)
    artifacts.check_writable(model_dir, force or resume)
    if resume and not ((staging / MEMBERS_STAGING).is_dir() and _has_progress(staging)):
        raise TransducerError(
            f"cannot --resume: no interrupted ensemble run in {staging}; train without --resume"
        )
    if not resume:
        if _has_progress(staging) and not force:
            raise TransducerError(
                f"{staging} holds an interrupted run; pass --resume to continue it, or --force to start over"
            )
        shutil.rmtree(staging, ignore_errors=True)
    return staging


def train_ensemble(
    pairs_path: str,
    model_dir: str | Path,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    val_path: str | None = None,
    force: bool = False,
    reporter=None,
    resume: bool = False,
    on_member=None,
    teaching=None,
) -> EnsembleResult:
    """Train train_cfg.ensemble members and publish them as one model directory.

    on_member(k, n, seed, event, result): called with event "start" before member k trains
    (result None), "skip" for a member finished by an earlier run, "end" after it (result: its
    TrainResult). teaching: every member's, as for one model (loop.train)."""
    model_dir = Path(model_dir)
    staging = _prepare_staging(model_dir, train_cfg, force, resume)
    members_root = staging / MEMBERS_STAGING
    on_member = on_member or (lambda *a: None)

    spooled = stream.local_copy(pairs_path)  # stdin can be read once; every member reads it
    result = EnsembleResult(model_dir=model_dir)
    members_root.mkdir(parents=True, exist_ok=True)
    try:
        scanned = scan_data(spooled, model_cfg, train_cfg, val_path)  # the same for every member
        n = train_cfg.ensemble
        for k, seed in enumerate(member_seeds(train_cfg), 1):
            member_cfg = dataclasses.replace(train_cfg, member=k - 1)
            where = members_root / str(k)
            if _finished(where, model_cfg, member_cfg):
                result.skipped.append(k)
                on_member(k, n, seed, "skip", None)
                continue
            on_member(k, n, seed, "start", None)
            member = train(
                spooled, where, model_cfg, member_cfg, val_path=val_path, force=True, reporter=reporter,
                resume=checkpoint.exists(artifacts.staging_dir(where)), scanned=scanned, teaching=teaching,
                aligner_from=members_root / "1" if k > 1 and model_cfg.arch == "edit" else None,  # fitted once
            )
            result.members.append(member)
            on_member(k, n, seed, "end", member)
            if member.interrupted:
                result.interrupted, result.signal, result.staging = True, member.signal, staging
                return result
        result.final = _assemble(staging, model_dir, train_cfg, held_out_pairs(*scanned))
    finally:
        if spooled != pairs_path:
            Path(spooled).unlink(missing_ok=True)
        if not _has_progress(staging):  # e.g. bad data: nothing to resume, nothing to refuse over
            shutil.rmtree(staging, ignore_errors=True)
    return result


def _has_progress(staging: Path) -> bool:
    """Whether `staging` holds work a new run must not silently discard: a (single-model)
    checkpoint, a finished ensemble member, or a member's checkpoint."""
    root = staging / MEMBERS_STAGING
    if checkpoint.exists(staging):
        return True
    return root.is_dir() and any((p / artifacts.CONFIG).is_file() or checkpoint.exists(p) for p in root.iterdir())


def _finished(where: Path, model_cfg: ModelConfig, member_cfg: TrainConfig) -> bool:
    """Member published by an earlier run of the same command (and not interrupted)."""
    if not (where / artifacts.CONFIG).is_file() or checkpoint.exists(artifacts.staging_dir(where)):
        return False
    saved = json.loads((where / artifacts.CONFIG).read_text(encoding="utf-8"))
    now = {k: v for k, v in member_cfg.to_dict().items() if k != "epochs"}
    before = {k: v for k, v in saved.get("train", {}).items() if k != "epochs"}
    model_keys = {k: v for k, v in saved.get("model", {}).items() if k not in ("input_vocab_size", "output_vocab_size")}
    wanted = {k: v for k, v in model_cfg.to_dict().items() if k not in ("input_vocab_size", "output_vocab_size")}
    if before != now or model_keys != wanted:
        raise TransducerError(
            f"cannot --resume: ensemble member {where.name} in {where.parent} was trained with other"
            " options; pass --force to start over"
        )
    return True


def _assemble(staging: Path, model_dir: Path, train_cfg: TrainConfig, held_out: list) -> dict:
    """Members 1..N in staging/members/ -> one model directory, published to model_dir;
    returns the ensemble's decoded validation metrics on `held_out`, the pairs every member
    validated on."""
    root, final = staging / MEMBERS_STAGING, staging / "final"
    shutil.rmtree(final, ignore_errors=True)
    (root / "1").rename(final)
    (final / artifacts.MEMBERS).mkdir()
    for k in range(2, train_cfg.ensemble + 1):
        (root / str(k)).rename(artifacts.member_dir(final, k))
    config = json.loads((final / artifacts.CONFIG).read_text(encoding="utf-8"))
    config["ensemble"] = {"members": train_cfg.ensemble, "seeds": member_seeds(train_cfg)}
    artifacts.write_json(final / artifacts.CONFIG, config)

    combined = decoded_metrics(evaluate_pairs(Predictor(final, cache=0), held_out))
    metrics = artifacts.read_metrics(final)
    metrics["ensemble"] = {"members": train_cfg.ensemble, "final": combined, "n_val": len(held_out)}
    artifacts.write_json(final / artifacts.METRICS, metrics)
    artifacts.publish(final, model_dir)
    shutil.rmtree(staging, ignore_errors=True)
    return combined


def train_members(pairs_path: str, model_dir: str | Path, model_cfg: ModelConfig, train_cfg: TrainConfig,
                  on_member=None, **common):
    """One model (loop.train), or train_cfg.ensemble members published as one model
    directory (train_ensemble); `common`: the keyword arguments both take."""
    if train_cfg.ensemble > 1:
        return train_ensemble(pairs_path, model_dir, model_cfg, train_cfg, on_member=on_member, **common)
    return train(pairs_path, model_dir, model_cfg, train_cfg, **common)
