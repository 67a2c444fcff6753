"""Spark column functions: a model over a table's string column, on every worker.

    >>> from transducer.spark import predict_udf                       # doctest: +SKIP
    >>> translit = predict_udf("models/translit", on_long="copy")      # doctest: +SKIP
    >>> df.withColumn("out", translit("name")).show()                  # doctest: +SKIP

Each function is a pandas UDF built on the Python API (`transducer.load`): the numpy
engine, so the workers need numpy, not TensorFlow. A worker process loads the model once
and keeps it for every later batch, task and job (keyed by directory and options). The
directory is read where the worker runs: the path as given when the workers share a file
system with the driver, else the copy Spark shipped under the path's last component
(`SparkContext.addFile(dir, recursive=True)`, or `spark-submit --archives m.tar.gz#m`).

Rows keep their order and number: a null stays null; a too-long value follows `on_long`
and an unseen character `unk`, as in `transducer predict`. A problem a user can fix
(options, a missing or damaged model directory, a too-long value under on_long="error")
raises TransducerError with the API's one-line message (an unknown option name with the
closest valid one): at once on the driver when it can tell (options; in local mode, the
directory too), else as the last line of the failed job's PythonException. Install with
`pip install "transducer[spark]"`. Nothing else in the package imports this module (an
import-linter contract says so).
"""

import os
import re
from typing import Iterator

try:
    import pandas as pd
    from pyspark import SparkContext, SparkFiles, TaskContext
    from pyspark.sql.functions import pandas_udf
    from pyspark.sql.types import ArrayType, DoubleType, StringType, StructField, StructType
except ImportError as e:  # pragma: no cover - the extra is not installed
    raise ImportError(f"transducer.spark needs the spark extra: pip install 'transducer[spark]' ({e})") from None

import transducer
from transducer.api import Model, TransducerError, predict_options

NBEST_TYPE = ArrayType(StructType([StructField("output", StringType()), StructField("score", DoubleType())]))

# One per worker process (Spark reuses Python workers across tasks and jobs): the models
# it has loaded, keyed by (directory, config.json's mtime, options); a model published
# again into the same directory is a new key, so a long session never runs a stale one.
_MODELS: dict[tuple, Model] = {}
LOADS: dict[tuple, int] = {}  # key -> times loaded in this process (tests check it stays 1)


def predict_udf(model_dir, **options):
    """A pandas UDF, string column -> string column: what `transducer predict` writes for
    each value (a label model: its label). options: `transducer.load`'s (beam, unk,
    on_long, batch_size, cache, ...), checked here on the driver.

        df.withColumn("out", predict_udf("models/m", on_long="copy")("name"))
    """
    key = _options(model_dir, options, "predict_udf")

    @pandas_udf(StringType())
    def predict(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
        for model, rows in _batches(model_dir, key, batches):
            yield _fill(rows, _checked(lambda: model.predict(rows.strings), rows))

    return predict


def predict_nbest_udf(model_dir, k: int = 5, **options):
    """A pandas UDF, string column -> array<struct<output: string, score: double>>: the k
    best outputs of each value, best first (Model.predict_nbest: the beam defaults to k;
    seq2seq scores are log-probabilities per symbol, label scores probabilities)."""
    if "nbest" in options:
        raise TransducerError("predict_nbest_udf takes k, not nbest")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise TransducerError(f"k must be an integer of at least 1, got {k!r}")
    key = _options(model_dir, options, "predict_nbest_udf")

    @pandas_udf(NBEST_TYPE)
    def predict_nbest(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
        for model, rows in _batches(model_dir, key, batches):
            found = _checked(lambda: model.predict_nbest(rows.strings, k), rows)
            yield _fill(rows, [[{"output": c.output, "score": c.score} for c in cands] for cands in found])

    return predict_nbest


def _options(model_dir, options: dict, caller: str) -> tuple:
    """The options as a hashable cache key, checked on the driver (TransducerError with the
    API's message); the model is loaded here too when this is local mode, where a directory
    the driver cannot read no worker can either."""
    predict_options(caller, **options)  # unknown names and bad values fail here, on the driver
    key = tuple(sorted(options.items()))
    sc = SparkContext._active_spark_context
    if os.path.isdir(_resolve(model_dir)) or (sc is not None and sc.master.startswith("local")):
        _model(model_dir, key)  # a damaged directory fails now, with its one line
    return key


def _resolve(model_dir) -> str:
    """The model directory on this machine: the path as given when it is here (a shared
    file system), else the copy Spark shipped under its last component (addFile,
    --archives); the path as given when neither is here, so the error names it."""
    path = os.fspath(model_dir)
    if os.path.isdir(path):
        return path
    try:
        shipped = SparkFiles.get(os.path.basename(os.path.normpath(path)))
    except Exception:  # no SparkContext on this driver, or no files shipped: nothing to find
        return path
    return shipped if os.path.isdir(shipped) else path


def _model(model_dir, key: tuple) -> Model:
    """This process's loaded model for (directory, options), loading it on first use."""
    path = _resolve(model_dir)
    try:
        stamp = os.stat(os.path.join(path, "config.json")).st_mtime_ns
    except OSError:
        stamp = None  # missing: transducer.load says so
    full = (os.path.abspath(path), stamp, key)
    model = _MODELS.get(full)
    if model is None:
        model = _MODELS[full] = transducer.load(path, **dict(key))
        LOADS[full] = LOADS.get(full, 0) + 1
    return model


class _Rows:
    """A batch's non-null values and where they stand in the task's partition (for errors)."""

    def __init__(self, texts: pd.Series, offset: int):
        present = texts.notna().to_numpy()
        self.present = present.tolist()
        self.strings = texts[present].tolist()
        self.positions = (present.nonzero()[0] + offset + 1).tolist()  # 1-based rows in the partition


def _batches(model_dir, key: tuple, batches: Iterator[pd.Series]):
    """(model, the batch's rows) for each Arrow batch of one task. The model is
    fetched before the first batch so a missing directory fails the task at once; its
    error is raised afresh so the driver sees one short frame, then the CLI's line."""
    try:
        model = _model(model_dir, key)
    except TransducerError as e:
        raise TransducerError(str(e), e.exit_code) from None
    offset = 0
    for texts in batches:
        yield model, _Rows(texts, offset)
        offset += len(texts)


ROW_NAME = re.compile(r"^strings:(\d+): ")  # how Model.predict names item N in its errors


def _checked(call, rows: _Rows):
    """call()'s result; a TransducerError naming the API's item N (a too-long value under
    on_long="error", a value holding a line break) names its row in the partition instead."""
    try:
        return call()
    except TransducerError as e:
        message = str(e)
        found = ROW_NAME.match(message)
        if found:
            task = TaskContext.get()
            where = f"partition {task.partitionId()}, " if task else ""
            message = f"{where}row {rows.positions[int(found[1]) - 1]}: " + message[found.end():]
        raise TransducerError(message, e.exit_code) from None


def _fill(rows: _Rows, results: list) -> pd.Series:
    """One result per row of the batch, in order: results for its values, None for its nulls."""
    found = iter(results)
    return pd.Series([next(found) if present else None for present in rows.present], dtype=object)
