"""Training on several devices or machines with TensorFlow's own `tf.distribute`.

--distribute none          one device (TensorFlow's default placement: the first GPU if any).
--distribute mirrored      `MirroredStrategy`: every local GPU (or CPU device) holds a replica;
                           gradients are all-reduced after each step.
--distribute multi-worker  `MultiWorkerMirroredStrategy`: the same across machines, configured
                           by the standard TF_CONFIG environment variable. Every worker runs
                           the same `transducer train` command; only the chief (task "chief",
                           or worker 0 when the cluster has no chief) writes the model
                           directory; the others write to a temporary directory that is
                           discarded (they must still save: saving reads synchronised
                           variables, which takes part in collective ops).

The default is `none`, even when several GPUs are visible: distributing changes the global
batch size (and so the optimisation), and a command should give the same result wherever
it runs. Ask for `mirrored` to use every local GPU.

--batch-size is per replica; the global batch is batch size x replicas (all workers), and
the pipeline is batched with the global size (tf.distribute splits each batch evenly).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from transducer.core.config import DISTRIBUTE as MODES, TransducerError
from transducer.networks.tf import tf


@dataclass
class Plan:
    mode: str  # one of MODES
    strategy: object  # the tf.distribute.Strategy (the default strategy for "none")
    replicas: int  # replicas in sync across all workers
    per_replica_batch: int  # --batch-size
    is_chief: bool  # writes the model directory (always True unless multi-worker)
    worker: str  # "worker 1 of 2" style label, for messages

    @property
    def global_batch(self) -> int:
        return self.per_replica_batch * self.replicas

    def counts(self) -> dict:
        return {
            "distribute": self.mode,
            "replicas": self.replicas,
            "global_batch": self.global_batch,
            "is_chief": self.is_chief,
        }


def make_plan(mode: str, per_replica_batch: int) -> Plan:
    """The strategy for `mode`. Create it before any other TensorFlow op runs: collective
    ops for multi-worker training must be configured at program start."""
    if mode not in MODES:
        raise TransducerError(f"--distribute must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "multi-worker":
        task_type, task_index, n_tasks, has_chief = _read_tf_config()
    if mode == "none":
        return Plan(mode, tf.distribute.get_strategy(), 1, per_replica_batch, True, "")
    if mode == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
        return Plan(mode, strategy, strategy.num_replicas_in_sync, per_replica_batch, True, "")
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    is_chief = task_type == "chief" or (task_type == "worker" and task_index == 0 and not has_chief)
    label = f"{task_type} {task_index} of {n_tasks} task(s)"
    return Plan(mode, strategy, strategy.num_replicas_in_sync, per_replica_batch, is_chief, label)


def _read_tf_config() -> tuple[str, int, int, bool]:
    raw = os.environ.get("TF_CONFIG", "")
    if not raw.strip():
        raise TransducerError(
            "--distribute multi-worker needs the TF_CONFIG environment variable"
            ' (e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}})'
        )
    try:
        conf = json.loads(raw)
        cluster, task = conf["cluster"], conf["task"]
        task_type, task_index = str(task["type"]), int(task["index"])
        n_tasks = sum(len(v) for v in cluster.values())
        members = cluster[task_type]
        if not 0 <= task_index < len(members):
            raise IndexError(task_index)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
        raise TransducerError(f"TF_CONFIG: not a valid cluster description ({type(e).__name__}: {e})") from None
    return task_type, task_index, n_tasks, "chief" in cluster


def output_dir(plan: Plan, model_dir: Path) -> Path:
    """Where this process writes the model: `model_dir` for the chief, else a temp dir."""
    if plan.is_chief:
        return model_dir
    return Path(tempfile.mkdtemp(prefix="transducer-worker-")) / model_dir.name


def discard(plan: Plan, written: Path) -> None:
    """Remove a non-chief worker's copy of the model."""
    if not plan.is_chief:
        shutil.rmtree(written.parent, ignore_errors=True)


def prepare_dataset(plan: Plan, ds):
    """Shard by element across workers: each worker reads the file and keeps its share of
    every global batch. (File sharding, the AUTO default, needs at least one file per worker.)"""
    if plan.mode != "multi-worker":
        return ds
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def patch_for_strategy(plan: Plan, model, element_spec) -> None:
    """Make `model.fit` / `model.evaluate` work under tf.distribute strategies in Keras 3.

    Keras 3 (3.15, with TF 2.21) fails in two places, both in
    keras/src/backend/tensorflow/trainer.py:

    1. `_maybe_symbolic_build` takes the first distributed batch and calls
       `strategy.reduce("MEAN", batch, axis=None)` on it, to get one batch to build the
       model's state from. That fails under both strategies: the collective strategy cannot
       reduce a nested per-replica structure ("Attempt to convert a value (PerReplica:...)
       to a Tensor"; keras-team/keras#20585, tensorflow/tensorflow#72388), and under
       MirroredStrategy the reduction adds the replicas' parts elementwise, so it fails
       whenever the first batch does not split evenly ("Inputs to operation AddN ... must
       have the same size and shape. Input 0: [6,8,12] != input 1: [5,8,12]"): with
       length-bucketed batches shuffled, an epoch's one short batch may well come first.
       Fix (both strategies): build from the dataset's element spec instead (shapes and
       dtypes are all the symbolic build looks at), so no batch is reduced at all.
    2. Multi-worker only: `reduce_per_replica` reduces each step's logs with
       `strategy.reduce("MEAN", v, axis=0)`, and the logs (loss, metric results) are
       scalars: there is no axis 0.
       Fix: the train and test steps return their logs as shape (1,) tensors; the MEAN
       over axis 0 and all replicas is then the global mean, a scalar, as Keras intends.

    The fixes are instance-level (this model only), use the public `train_step` /
    `test_step` override points plus `_symbolic_build`, and leave `--distribute none`
    untouched. tests/test_distribute.py trains on two CPU devices (mirrored, also with a
    validation batch that splits 7 + 6) and two workers on localhost through them.

    Not fixed, by design of Keras: a training batch that does not split evenly (an epoch's
    short last one) gives each replica's mean loss the same weight, so in a batch split
    3 + 2 a row of the 2 counts 1/4 instead of 1/5. Only that one step per epoch differs
    from one device; metrics are sums over rows and stay exact.
    """
    if plan.mode == "none":
        return
    strategy = plan.strategy
    cls = type(model)

    def maybe_symbolic_build(iterator=None, data_batch=None):
        with strategy.scope():
            model._symbolic_build(data_batch=element_spec)

    model._maybe_symbolic_build = maybe_symbolic_build
    if plan.mode != "multi-worker":
        return

    def rank1(logs):
        return {k: tf.reshape(v, [1]) for k, v in logs.items()}  # () -> (1,)

    model.train_step = lambda data: rank1(cls.train_step(model, data))
    model.test_step = lambda data: rank1(cls.test_step(model, data))
