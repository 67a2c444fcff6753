"""What `summarize` shows: the layer table, a model directory's config, how it was trained
(settings that applied, final metrics, curves), an ensemble's members, and the Dense vs
TimeDistributed(Dense) comparison. Printed on an `render.Output` console."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from transducer.ui.render import duration, fmt_value, ordered, print_lines, show


def layer_table(rows) -> Table:
    """(name, type, output shape, parameters) rows, then their total."""
    table = Table()
    table.add_column("Layer (type)")
    table.add_column("Output Shape")
    table.add_column("Param #", justify="right")
    for name, kind, shape, params in rows:
        table.add_row(f"{name} ({kind})", shape, f"{params:,}")
    table.add_section()
    table.add_row("Total params", "", f"{sum(r[3] for r in rows):,}")
    return table


def network(console: Console, summary) -> None:
    """The layer table of a network without a model directory (an api.NetworkSummary)."""
    show(console, summary.title, layer_table(summary.layers))


def model_dir(console: Console, path: Path) -> None:
    """Everything summarize says about a model directory, without TensorFlow: the layer
    table comes from config.json and weights.npz (inference.layer_table), not model.keras."""
    from transducer.core.artifacts import read_info, read_members, read_metrics
    from transducer.core.history import read_training_summary
    from transducer.inference.layer_table import model_dir_rows

    info = read_info(path)
    members = read_members(info)  # an ensemble whose members disagree fails before any table
    show(console, f"{path} ({info.model.arch})", layer_table(model_dir_rows(info)))
    show(console, "config", key_value_table(config_rows(info)))
    training(console, read_training_summary(info.path))
    ensemble_members(console, info, members, read_metrics(info.path))


def key_value_table(rows) -> Table:
    table = Table(show_header=False)
    for k, v in rows:
        table.add_row(k, escape(str(v)))
    return table


def config_rows(info) -> list[tuple[str, object]]:
    """The network's settings that apply to its architecture."""
    m = info.model
    rows = [("architecture", m.arch)]
    if m.arch != "label":  # a label model's head is always dense
        rows.append(("head", m.head))
    rows += [("max_len", m.max_len), ("hidden", m.hidden), ("layers", m.layers), ("bidirectional", m.bidirectional),
             ("reset_after", m.reset_after)]
    if m.arch == "seq2seq":
        rows.append(("attention", m.attention))
    rows += [("dropout", m.dropout), ("normalize", m.normalize), ("input vocab", f"{len(info.input_vocab)} symbols"),
             output_row(info), ("trained on", f"{info.raw.get('data', {}).get('n_train', '?')} pairs"),
             ("transducer version", info.raw.get("transducer_version", "?"))]
    return rows


def output_row(info) -> tuple[str, str]:
    """The config table's output vocabulary row; a label model lists its labels, an edit
    model its action kinds."""
    n = len(info.output_vocab)
    if info.model.arch == "edit":
        return "actions", action_line(info.output_vocab)
    if info.model.arch != "label":
        return "output vocab", f"{n} symbols"
    shown = ", ".join(info.output_vocab.symbols[:20]) + (f", ... ({n - 20} more)" if n > 20 else "")
    return "labels", f"{n}: {shown}"


def action_line(actions) -> str:
    """e.g. "23 ids: <pad>, <s>, END, COPY, DELETE, SUBSTITUTE x 9, INSERT x 9 (characters:
    abc...)", an edit model's action vocabulary (core/edits.EditActions)."""
    k = len(actions.chars)
    chars = repr("".join(actions.chars[:40]))[1:-1] + (f" ... ({k - 40} more)" if k > 40 else "")
    return f"{len(actions)} ids: <pad>, <s>, END, COPY, DELETE, SUBSTITUTE x {k}, INSERT x {k} (characters: {chars})"


def training(console: Console, summary) -> None:
    """How the model was trained: settings and time, final metrics, curves."""
    hp = summary.settings()
    rows = [("epochs", f"{summary.epochs_run} run (at most {hp.pop('epochs', '?')})"),
            ("best epoch", summary.best_epoch or "?")]
    if summary.train_seconds is not None:
        per = summary.train_seconds / max(summary.epochs_run, 1)
        rows.append(("training time", f"{duration(summary.train_seconds)} ({duration(per)} per epoch)"))
    first = ("batch_size", "learning_rate")  # then the rest as config.json lists them (schedule...), seed last
    keys = [*[k for k in first if k in hp], *[k for k in hp if k not in first and k != "seed"], "seed"]
    rows += [(k.replace("_", " "), hp[k]) for k in keys if k in hp]
    show(console, "training", key_value_table(rows))
    if summary.final:
        names = summary.final_names()
        table = Table()
        table.add_column("metric")
        table.add_column("value", justify="right")
        for k, v in ordered(summary.final):
            table.add_row(names[k], f"{v:.4f}")
        show(console, f"final metrics (epoch {summary.best_epoch}'s weights)", table)
    if summary.curves:
        curves(console, summary)


PLOTS = (
    ({"loss": "●", "val_loss": "○"}, "loss per epoch"),
    ({"val_exact_match": "●"}, "validation exact match per epoch"),
    ({"val_accuracy": "●"}, "validation accuracy per epoch"),  # a label model's
)


def curves(console: Console, summary) -> None:
    """Plots of loss and exact match per epoch, then a table of every curve."""
    from transducer.ui.charts import epoch_plot, sparkline

    curves, names = summary.curves, summary.curve_names()
    for marks, title in PLOTS:
        marks = {k: m for k, m in marks.items() if k in curves}
        if marks:
            legend = ", ".join(f"{m} {names[k]}" for k, m in marks.items()) + (", ◉ both" if len(marks) > 1 else "")
            lines = epoch_plot({k: curves[k] for k in marks}, marks, summary.best_epoch)
            console.print("\n".join([f"{title} ({legend})", *lines]), markup=False, highlight=False, soft_wrap=True)
    table = Table()
    for col in ("curve", "epoch 1", f"best (epoch {summary.best_epoch})", "last", "trend"):
        table.add_column(col, justify="left" if col in ("curve", "trend") else "right", no_wrap=col == "trend")
    best = summary.best_epoch - 1
    for k, vals in ordered(curves):
        at_best = fmt_value(k, vals[best]) if 0 <= best < len(vals) else ""
        table.add_row(names[k], fmt_value(k, vals[0]), at_best, fmt_value(k, vals[-1]), sparkline(vals))
    show(console, "per-epoch curves", table)


def ensemble_members(console: Console, info, members: list, metrics: dict) -> None:
    """An ensemble: how many members, and each member's validation metrics."""
    from transducer.core.artifacts import member_dir, read_metrics

    if len(members) == 1:
        return
    seeds = info.raw.get("ensemble", {}).get("seeds") or ["?"] * len(members)
    table = Table()
    for col in ("member", "seed", "directory", "best epoch", "val loss", "exact match (decoded)", "CER"):
        table.add_column(col, justify="left" if col == "directory" else "right")
    fmt = lambda d, k: f"{d[k]:.4f}" if k in d else ""  # noqa: E731
    for k, m in enumerate(members, 1):
        mm = read_metrics(member_dir(info.path, k))
        final = mm.get("final", {})
        table.add_row(
            str(k), str(seeds[k - 1]), "(top level)" if k == 1 else escape(str(m.path.relative_to(info.path))),
            f"{mm.get('best_epoch', '?')} of {mm.get('epochs_run', '?')}",
            fmt(final, "loss"), fmt(final, "decoded_exact_match"), fmt(final, "cer"),
        )
    combined = metrics.get("ensemble", {}).get("final", {})
    if combined:
        table.add_section()
        table.add_row("ensemble", "", "", "", "", fmt(combined, "decoded_exact_match"), fmt(combined, "cer"))
    show(console, f"ensemble of {len(members)} members (the layer table is each member's)", table)


HEADS_EXPLAINED = (
    "Dense applied to a 3-D tensor (batch, time, features) already acts on the last axis: the "
    "same kernel and bias are used at every timestep. TimeDistributed(Dense) states that "
    "explicitly by mapping the same Dense over the time axis. Same parameters "
    "(hidden x vocab + vocab), same outputs for the same weights; the only difference is how "
    "the computation is laid out, which shows up as speed."
)


def compare_heads(console: Console, r: dict) -> None:
    """Both heads' layer tables, their timings on the same weights (api.compare_heads's
    measurements), and why they agree."""
    show(console, "head: dense", layer_table(r["dense_rows"]))
    show(console, "head: time-distributed", layer_table(r["td_rows"]))
    table = Table()
    table.add_column("")
    table.add_column("Dense", justify="right")
    table.add_column("TimeDistributed(Dense)", justify="right")
    table.add_row("whole model, ms/batch", f"{r['dense_seconds'] * 1e3:.2f}", f"{r['td_seconds'] * 1e3:.2f}")
    table.add_row("head alone (eager call), ms/batch", f"{r['dense_head_seconds'] * 1e3:.3f}", f"{r['td_head_seconds'] * 1e3:.3f}")
    ratio = r["td_seconds"] / max(r["dense_seconds"], 1e-12)
    head_ratio = r["td_head_seconds"] / max(r["dense_head_seconds"], 1e-12)
    table.add_row("TimeDistributed / Dense", "", f"{ratio:.2f}x model, {head_ratio:.2f}x head")
    show(console, f"same weights, same random batch of {r['batch']}", table)
    print_lines(console, f"max |Dense - TimeDistributed| over all outputs: {r['max_abs_diff']:.3g}")
    print_lines(console, HEADS_EXPLAINED)
