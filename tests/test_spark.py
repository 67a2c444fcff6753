"""transducer.spark: the pandas UDFs on a local[2] session give, row for row, what
`transducer predict` writes (nulls kept, on_long and unk as the CLI), for one model, an
ensemble and a label model, with the directory found by path or shipped by Spark; a
missing or damaged directory is the CLI's one line. One session for the whole module."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from conftest import ROOT, TINY_MAX_LEN, assert_clean_error, invoke, make_pairs, write_pairs

pytestmark = pytest.mark.slow

pyspark = pytest.importorskip("pyspark", reason="the spark extra is not installed")  # CI installs it

import transducer  # noqa: E402
from transducer.core.config import TransducerError  # noqa: E402
from transducer.spark import predict_nbest_udf, predict_udf  # noqa: E402

BATCH = 400  # rows per Arrow batch: several batches per task, so the cache is crossed


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    # Workers run this interpreter, and find this checkout's package first.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYSPARK_PYTHON", sys.executable)
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        session = (
            SparkSession.builder.master("local[2]").appName("transducer-tests")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "2")
            .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(BATCH))
            .config("spark.sql.execution.pyspark.udf.hideTraceback.enabled", "true")
            .getOrCreate()
        )
        session.sparkContext.setLogLevel("FATAL")  # failing tasks are expected below
        yield session
        session.stop()


def table(spark, texts, partitions=2):
    """A DataFrame (id, s) of `texts` (None: a null), in `partitions` slices."""
    return spark.createDataFrame(list(enumerate(texts)), "id long, s string").repartition(partitions, "id")


def by_id(rows, column="o") -> list:
    """A collected column in id order (the id rides in the row with its input and output,
    so a row reordered inside a batch would show as a wrong output)."""
    return [r[column] for r in sorted(rows, key=lambda r: r["id"])]


def cli_lines(tmp_path, model_dir, texts, *options) -> list[str]:
    path = tmp_path / "in.txt"
    path.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    r = invoke("predict", model_dir, path, *options)
    assert r.exit_code == 0, r.stderr
    return r.stdout.split("\n")[: len(texts)]


def test_outputs_equal_the_cli_row_for_row(spark, tiny_model, tmp_path):
    """A few thousand rows (repeats, unseen characters, empty strings) over several tasks
    and batches: each row's output is `transducer predict`'s line for it."""
    texts = [w for w, _ in make_pairs(3000, seed=7)]
    texts = [t + "#é"[i % 2] if i % 13 == 0 else "" if i % 101 == 0 else t for i, t in enumerate(texts)]
    policies = ("copy", "model")
    rows = table(spark, texts, 3).select("id", *(predict_udf(tiny_model, unk=u)("s").alias(u) for u in policies)).collect()
    for unk in policies:
        assert by_id(rows, unk) == cli_lines(tmp_path, tiny_model, texts, "--unk", unk)


def test_nulls_stay_null_and_long_values_follow_on_long(spark, tiny_model, tmp_path):
    long = "abcXYZ" * 3  # 18 characters, over max_len 12
    texts = ["abc", None, long, "XYZ", None, "", long[:TINY_MAX_LEN]] * 50
    df = table(spark, texts)
    rows = df.select(
        "id", *(predict_udf(tiny_model, on_long=p)("s").alias(p) for p in ("truncate", "copy"))
    ).collect()
    present = [t for t in texts if t is not None]
    for policy in ("truncate", "copy"):
        want = iter(cli_lines(tmp_path, tiny_model, present, "--on-long", policy))
        assert by_id(rows, policy) == [None if t is None else next(want) for t in texts]
    assert long in by_id(rows, "copy")  # copied unchanged

    with pytest.raises(pyspark.errors.PythonException) as e:
        df.coalesce(1).sortWithinPartitions("id").select(predict_udf(tiny_model)("s")).collect()
    # row 3 of the only partition (nulls count as rows): the API's message, then no JVM frames
    assert last_line(e.value) == (
        "transducer.core.config.TransducerError: partition 0, row 3: input is 18 characters, longer than the"
        f" model's max_len {TINY_MAX_LEN}; use on_long='truncate' or on_long='copy'"
    )


def last_line(error) -> str:
    text = str(error)
    assert "at org.apache" not in text  # no JVM stack trace in what the driver sees
    return [line for line in text.splitlines() if line.strip()][-1].strip()


def test_nbest_gives_the_apis_candidates(spark, tiny_model):
    texts = ["abc", None, "XYZab", "", "dd#"] * 40
    got = by_id(table(spark, texts).select("id", predict_nbest_udf(tiny_model, k=3)("s").alias("o")).collect())
    want = iter(transducer.load(tiny_model).predict_nbest([t for t in texts if t is not None], 3))
    for text, cands in zip(texts, got):
        if text is None:
            assert cands is None
        else:
            assert [(c["output"], c["score"]) for c in cands] == [(c.output, c.score) for c in next(want)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """An ensemble of two aligned members and a label model, one epoch each, through the API."""
    root = tmp_path_factory.mktemp("spark")
    pairs = make_pairs(200, seed=3)
    small = dict(max_len=TINY_MAX_LEN, hidden=8, epochs=1, batch_size=32)
    transducer.train(pairs, root / "ensemble", ensemble=2, **small)
    labels = [(w, "upper" if w[0].isupper() else "long" if len(w) > 4 else "short") for w, _ in pairs]
    transducer.train(labels, root / "label", arch="label", **small)
    return root


def test_an_ensemble_and_a_label_model(spark, trained, tmp_path):
    texts = [w for w, _ in make_pairs(600, seed=9)]
    df = table(spark, texts)
    rows = df.select("id", *(predict_udf(trained / m)("s").alias(m) for m in ("ensemble", "label"))).collect()
    for m in ("ensemble", "label"):
        assert by_id(rows, m) == cli_lines(tmp_path, trained / m, texts)
    assert set(by_id(rows, "label")) <= {"upper", "long", "short"}  # a label model gives its label


def test_a_model_shipped_by_addfile_or_archive(spark, tiny_model, tmp_path):
    """A name no worker can find as a path (it is relative, and not in the working
    directory) is found as Spark's shipped copy: addFile's, or an archive's unpacked one."""
    sc = spark.sparkContext
    names = ("shipped_by_addfile", "shipped_by_archive")
    assert not any(Path(name).exists() for name in names)
    sc.addFile(str(shutil.copytree(tiny_model, tmp_path / names[0])), recursive=True)
    archive = shutil.make_archive(str(tmp_path / "model"), "gztar", root_dir=tiny_model)
    sc.addArchive(f"{archive}#{names[1]}")
    texts = [w for w, _ in make_pairs(300, seed=11)]
    rows = table(spark, texts).select("id", *(predict_udf(name)("s").alias(name) for name in names)).collect()
    want = cli_lines(tmp_path, tiny_model, texts)
    assert by_id(rows, names[0]) == want and by_id(rows, names[1]) == want


def test_each_worker_loads_a_model_once_and_never_imports_tensorflow(spark, tiny_model):
    """After the tests above (many batches and tasks per worker process): every (model,
    options) a worker process met was loaded there once, and TensorFlow never was."""
    from pyspark.sql.functions import pandas_udf

    table(spark, ["abc"] * 2000, 4).select(predict_udf(tiny_model)("s")).collect()

    @pandas_udf("string")
    def probe(s):
        import pandas as pd

        from transducer import spark as module

        state = {"pid": os.getpid(), "loads": list(module.LOADS.values()), "tf": "tensorflow" in sys.modules}
        return pd.Series([json.dumps(state)] * len(s))

    states = [json.loads(r[0]) for r in table(spark, range(200), 4).select(probe("s")).collect()]
    assert any(s["loads"] for s in states)
    assert all(n == 1 for s in states for n in s["loads"]), states
    assert not any(s["tf"] for s in states)


def test_a_missing_or_damaged_model_is_the_clis_one_line(spark, tiny_model, tmp_path):
    texts = ["abc", "XYZ"]
    (tmp_path / "in.txt").write_text("abc\n")
    # Local mode: the driver sees what every worker would, and says so at once.
    for broken, message in (
        (tmp_path / "nowhere", f"{tmp_path / 'nowhere'}: no such model directory"),
        (damaged(tiny_model, tmp_path / "damaged"), "invalid config"),
    ):
        with pytest.raises(TransducerError) as e:
            predict_udf(broken)
        assert message in str(e.value) and "\n" not in str(e.value)
        assert_clean_error(invoke("predict", broken, tmp_path / "in.txt"), str(e.value))
    with pytest.raises(TransducerError, match="^beam must be an integer of at least 1"):
        predict_udf(tiny_model, beam=0)
    with pytest.raises(TransducerError, match=r"predict_udf\(\) got an unknown option 'beams' \(did you mean 'beam'\?\)"):
        predict_udf(tiny_model, beams=2)
    with pytest.raises(TransducerError, match=r"unknown option 'on_lnog' \(did you mean 'on_long'\?\)"):
        predict_nbest_udf(tiny_model, k=2, on_lnog="copy")

    # Gone between the call and the job: the worker's failure, as the driver sees it.
    gone = shutil.copytree(tiny_model, tmp_path / "gone")
    udf = predict_udf(gone)
    shutil.rmtree(gone)
    with pytest.raises(pyspark.errors.PythonException) as e:
        table(spark, texts).select(udf("s")).collect()
    assert last_line(e.value) == f"transducer.core.config.TransducerError: {gone}: no such model directory"


def damaged(model_dir: Path, where: Path) -> Path:
    """A copy of `model_dir` whose config.json has lost its output vocabulary."""
    shutil.copytree(model_dir, where)
    config = json.loads((where / "config.json").read_text())
    config.pop("output_vocab")
    (where / "config.json").write_text(json.dumps(config))
    return where
