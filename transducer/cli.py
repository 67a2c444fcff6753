"""Command line: parse options, call one library function, render the result.

stdout carries each command's result: predict's lines, evaluate's table (or --json),
summarize's tables, export's path. Everything else (progress, warnings, errors) goes to
stderr, so `transducer evaluate m t.tsv > report.txt` keeps the report and a pipe gets
only data. TensorFlow is imported inside the commands that need it, so
`transducer --help` and argument errors stay fast.
"""

from __future__ import annotations

import json
import os
import sys
import unicodedata
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from transducer._version import __version__
from transducer.core.config import (
    ARCHS, ATTENTIONS, CACHE_LINES, DISTRIBUTE, ENGINES, FORMATS, HEADS, LOG_FORMATS,
    LR_SCHEDULES, NORMALIZE, ModelConfig, PredictOptions, TransducerError,
)


class _PlainFlags:
    """--help with arguments in capitals and on/off flags without a value placeholder."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for p in params:
            if p.param_type_name == "argument" and p.metavar is None:
                p.metavar = p.name.upper()
            elif getattr(p, "is_bool_flag", False) and p.metavar is None:
                p.metavar = ""  # shown as nothing: a flag takes no value
        return params


class _Group(_PlainFlags, typer.core.TyperGroup):
    pass


class _Command(_PlainFlags, typer.core.TyperCommand):
    """Usage lines in the usual form: `transducer predict [OPTIONS] MODEL_DIR [FILE]`."""

    def collect_usage_pieces(self, ctx):
        pieces = [self.options_metavar] if self.options_metavar else []
        for p in self.get_params(ctx):
            if p.param_type_name == "argument":
                pieces.append(p.metavar if p.required else f"[{p.metavar}]")
        return pieces


app = typer.Typer(
    cls=_Group,
    add_completion=True,  # --install-completion / --show-completion
    no_args_is_help=True,
    help="Train and run character-level recurrent string-to-string models.",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)
out = Console()  # a command's result (tables, pictures): stdout
err = Console(stderr=True)  # progress, warnings, errors: stderr


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"transducer {__version__}\n")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
):
    """Train and run character-level recurrent string-to-string models."""


VERBOSE_HELP = "Show TensorFlow's own logs (silenced by default)."
UNK_HELP = (
    "Characters never seen in training, aligned models: copy (through unchanged, at their position)"
    " | model (read as <unk>; the model may end the string there). seq2seq models always read <unk>."
)


def _quiet_tensorflow(verbose: bool) -> None:
    """Decide, before TensorFlow is first imported, whether its logs are shown."""
    os.environ["TRANSDUCER_VERBOSE"] = "1" if verbose else "0"
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0" if verbose else "3"
    if not verbose:
        import warnings

        warnings.filterwarnings("ignore", module="keras")
        warnings.filterwarnings("ignore", module="tensorflow")


def _fail(e: TransducerError) -> None:
    # Messages hold file names and data: escaped, so "[...]" in them is never markup.
    err.print(f"[bold red]error:[/] {escape(str(e))}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(e.exit_code)


def _model_cfg(**kw) -> ModelConfig:
    return ModelConfig(**kw)


def _choice(value: str, allowed: tuple[str, ...], option: str) -> str:
    if value not in allowed:
        raise typer.BadParameter(f"must be one of {', '.join(allowed)}", param_hint=option)
    return value


# --- train -------------------------------------------------------------------------------


@app.command(cls=_Command)
def train(
    ctx: typer.Context,
    pairs: str = typer.Argument(..., help="UTF-8 file of input<TAB>output lines; - reads stdin."),
    model_dir: Path = typer.Option(..., "--model-dir", "-m", help="Directory to write the model to."),
    arch: str = typer.Option("aligned", help=f"Architecture: {' | '.join(ARCHS)} (label: the second column is one label per string)."),
    head: str = typer.Option("dense", help=f"Per-timestep output layer: {' | '.join(HEADS)} (label models: dense only)."),
    hidden: int = typer.Option(128, help="Units in each GRU layer."),
    layers: int = typer.Option(1, help="Stacked GRU layers."),
    bidirectional: bool = typer.Option(False, help="Read the input both ways (each position sees all of it)."),
    dropout: Optional[float] = typer.Option(
        None, help="Dropout after each GRU layer (seq2seq: and on attention weights). Default: aligned 0, seq2seq 0.1."
    ),
    reset_after: bool = typer.Option(True, help="GRU reset gate after the matmul (Keras 3 default); --no-reset-after is Keras 2's."),
    attention: str = typer.Option("luong", help=f"seq2seq attention: {' | '.join(ATTENTIONS)}."),
    max_len: int = typer.Option(64, help="Longest input/output string in characters (of the --normalize form)."),
    normalize: Optional[str] = typer.Option(
        None, help=f"Unicode normalization of training pairs and, later, of inputs: {' | '.join(NORMALIZE)}"
        " (default: aligned none, seq2seq nfd)."
    ),
    epochs: int = typer.Option(30, help="Maximum epochs (early stopping usually ends sooner)."),
    batch_size: int = typer.Option(64, help="Sequences per training step (per replica with --distribute)."),
    learning_rate: float = typer.Option(3e-3, help="Adam learning rate."),
    val_split: float = typer.Option(0.1, help="Fraction of pairs held out for validation."),
    val_file: Optional[str] = typer.Option(None, help="Validation pairs file (instead of --val-split)."),
    patience: Optional[int] = typer.Option(
        None, help="Epochs without improvement before stopping (default: aligned 2, seq2seq 4)."
    ),
    min_delta: Optional[float] = typer.Option(
        None, help="Smallest validation-loss drop that counts as improvement: aligned, absolute (default"
        " 1e-3); seq2seq, a fraction of the best loss (default 1e-3 = 0.1%)."
    ),
    lr_schedule: Optional[str] = typer.Option(
        None, help=f"Learning-rate schedule: {' | '.join(LR_SCHEDULES)} (plateau: halve after --lr-patience"
        " epochs without improvement; cosine: fall towards 0 over --epochs, for a fixed time budget)."
        " Default: aligned constant, seq2seq plateau."
    ),
    lr_patience: Optional[int] = typer.Option(None, help="plateau: epochs without improvement before halving (default 2)."),
    label_smoothing: Optional[float] = typer.Option(
        None, help="Spread this share of each target's probability over all symbols (default: aligned 0, seq2seq 0.1)."
    ),
    init_from: Optional[Path] = typer.Option(
        None, help="Start from this trained model's weights and vocabularies (architecture options default to its own)."
    ),
    seed: int = typer.Option(0, help="Random seed: same seed and data give the same model on CPU."),
    skip_invalid: bool = typer.Option(False, help="Skip invalid rows (reported) instead of stopping."),
    distribute: str = typer.Option(
        "none", help=f"tf.distribute strategy: {' | '.join(DISTRIBUTE)} (multi-worker reads TF_CONFIG)."
    ),
    force: bool = typer.Option(False, help="Replace an existing model directory."),
    resume: bool = typer.Option(False, help="Continue an interrupted run from its last epoch checkpoint (same command otherwise; --epochs may change)."),
    ensemble: Optional[int] = typer.Option(None, help="Train N members (seeds --seed, --seed+1, ...) into one model directory; predict and evaluate average them. Default 1, or with --init-from as many as that model has."),
    teacher: Optional[str] = typer.Option(None, help="Distil: train on this model's beam outputs (e.g. an ensemble's) for the training inputs instead of their references; validation stays on references."),
    extra_inputs: Optional[str] = typer.Option(None, help="With --teacher: a file of unlabeled strings, one a line, that the teacher labels for training too."),
    log_format: Optional[str] = typer.Option(
        None, help=f"Progress on stderr: {' | '.join(LOG_FORMATS)} (default: rich on a terminal, plain otherwise)."
    ),
    verbose: bool = typer.Option(False, help=VERBOSE_HELP),
):
    """Train a model on PAIRS and save it to --model-dir.

    Examples:

        transducer train sample_data/translit.train.tsv --model-dir models/translit

        nohup transducer train sample_data/translit.train.tsv -m models/translit --log-format jsonl 2> train.log &

        transducer train sample_data/langid.train.tsv --model-dir models/langid --arch label --bidirectional --hidden 64 --max-len 20
    """
    _choice(arch, ARCHS, "--arch")
    _choice(head, HEADS, "--head")
    _choice(attention, ATTENTIONS, "--attention")
    _choice(distribute, DISTRIBUTE, "--distribute")
    for value, allowed, option in (
        (normalize, NORMALIZE, "--normalize"), (lr_schedule, LR_SCHEDULES, "--lr-schedule"),
        (log_format, LOG_FORMATS, "--log-format"),
    ):
        if value is not None:
            _choice(value, allowed, option)
    _quiet_tensorflow(verbose)
    try:
        from transducer.training.recipe import resolve

        architecture = dict(
            arch=arch, max_len=max_len, hidden=hidden, layers=layers, bidirectional=bidirectional,
            reset_after=reset_after, head=head, attention=attention, normalize=normalize,
        )
        given = frozenset(k for k in architecture if ctx.get_parameter_source(k).name != "DEFAULT")
        training = dict(
            patience=patience, min_delta=min_delta, lr_schedule=lr_schedule, lr_patience=lr_patience,
            label_smoothing=label_smoothing, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
            val_split=val_split, seed=seed, skip_invalid=skip_invalid, distribute=distribute, ensemble=ensemble,
        )
        mcfg, tcfg = resolve(architecture, dropout, training, given, init_from)
        from transducer.ui.progress import make_reporter

        reporter = make_reporter(log_format, err)
        try:
            if teacher is not None or extra_inputs is not None:
                from transducer.training.distill import train_student

                result = train_student(
                    pairs, model_dir, mcfg, tcfg, teacher, extra_inputs, val_path=val_file, force=force,
                    reporter=reporter, resume=resume, on_member=lambda *event: _render_member(reporter, *event),
                )
            elif tcfg.ensemble > 1:
                from transducer.training.ensemble import train_ensemble

                result = train_ensemble(
                    pairs, model_dir, mcfg, tcfg, val_path=val_file, force=force, reporter=reporter,
                    resume=resume, on_member=lambda *event: _render_member(reporter, *event),
                )
            else:
                from transducer.training.loop import train as run_train

                result = run_train(
                    pairs, model_dir, mcfg, tcfg, val_path=val_file, force=force, reporter=reporter, resume=resume
                )
        finally:
            reporter.close()
    except TransducerError as e:
        _fail(e)
    if tcfg.ensemble > 1:
        _render_ensemble_result(reporter, result)
        return
    reporter.end(result)
    if result.interrupted:
        _render_interrupted(result)


def _render_interrupted(result) -> None:
    from transducer.training.checkpoint import SIGNAL_EXIT

    done = result.epochs_run
    err.print(
        f"[yellow]{result.signal}:[/] stopped after epoch {done}; saved the best model so far"
        f" (epoch {result.best_epoch}) to {escape(str(result.model_dir))} and kept the checkpoint in"
        f" {escape(str(result.checkpoint))}. To continue training, run the same command again"
        " with --resume (add --epochs N to change the total).",
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(SIGNAL_EXIT.get(result.signal, 130))


def _render_member(reporter, k: int, n: int, seed: int, event: str, result) -> None:
    """train_ensemble's per-member progress, on stderr; a member's end is the reporter's.
    With --log-format jsonl these are events too ({"event": "member", ...})."""
    if event == "end":
        reporter.end(result)
    elif hasattr(reporter, "event"):  # jsonl: every line stays one JSON object
        reporter.event("member", member=k, members=n, seed=seed, status=event)
    else:
        kept = ": already trained, kept" if event == "skip" else ""
        err.print(f"ensemble member {k} of {n} (seed {seed}){kept}", highlight=False)


def _render_ensemble_result(reporter, result) -> None:
    from transducer.training.checkpoint import SIGNAL_EXIT

    members = len(result.skipped) + len(result.members)
    jsonl = hasattr(reporter, "event")
    if jsonl:
        reporter.event(
            "ensemble", model_dir=str(result.model_dir), members=members, interrupted=result.interrupted,
            final=result.final,
        )
    if result.interrupted:
        k = members
        err.print(
            f"[yellow]{result.signal}:[/] stopped while training ensemble member {k};"
            f" {escape(str(result.model_dir))} is unchanged. The finished members and member {k}'s"
            f" checkpoint are kept in {escape(str(result.staging))}. To continue training, run the"
            " same command again with --resume.",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(SIGNAL_EXIT.get(result.signal, 130))
    if jsonl:
        return
    from transducer.core.history import readable

    scores = ", ".join(f"{readable(k, 'validation')} {v:.4f}" for k, v in result.final.items())
    err.print(
        f"saved {result.model_dir}: an ensemble of {members} members; the ensemble's {scores}",
        highlight=False,
        soft_wrap=True,
    )


# --- predict -----------------------------------------------------------------------------


@app.command(cls=_Command)
def predict(
    model_dir: Path = typer.Argument(..., help="Model directory written by `transducer train`."),
    file: str = typer.Argument("-", help="Input file, one string per line; - or omitted reads stdin."),
    format: str = typer.Option("text", "--format", "-f", help="Output: text | tsv (input<TAB>output) | jsonl."),
    on_long: str = typer.Option("error", help="Lines longer than max_len: error | truncate | copy (echo unchanged)."),
    encoding_errors: str = typer.Option("strict", help="Invalid UTF-8 input: strict (error) | replace."),
    batch_size: int = typer.Option(1024, help="Lines per model call."),
    engine: str = typer.Option("numpy", help="Inference engine: numpy (no TensorFlow) | keras."),
    beam: int = typer.Option(1, help="seq2seq beam width (1: greedy); aligned: >1 searches the exact best strings; label: no effect."),
    nbest: int = typer.Option(1, help="Candidates per line (at most --beam; alone it sets --beam K): tab-separated in text, with scores in tsv/jsonl (label models: the K most probable labels)."),
    unk: str = typer.Option("copy", help=UNK_HELP),
    cache: int = typer.Option(CACHE_LINES, help="Distinct lines whose results are kept and reused (about 250 bytes each); 0 computes every line."),
    verbose: bool = typer.Option(False, help=VERBOSE_HELP),
):
    """Predict one output line per input line, in order, on stdout.

    Each line is answered as soon as it is read when the input pauses (a terminal, `tail -f`);
    a fast producer fills whole batches.

    Example:

        cat sample_data/demo_inputs.txt | transducer predict models/translit > out.txt

        cat sample_data/dates_demo_inputs.txt | transducer predict models/dates --beam 5 --nbest 3 -f jsonl
    """
    _choice(format, FORMATS, "--format")
    try:
        options = PredictOptions(
            engine=engine, beam=beam, nbest=nbest, unk=unk, on_long=on_long, encoding_errors=encoding_errors,
            batch_size=batch_size, cache=cache,
        )
    except TransducerError as e:
        raise typer.BadParameter(str(e)) from None
    _quiet_tensorflow(verbose)
    # OpenBLAS's own threads thrash on the numpy engine's small matrices (20x slower on a
    # busy 2-core machine); the engine runs sub-batches in threads instead. Read when
    # numpy is first imported, which is below.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from transducer.core.data import display_name, open_binary
    from transducer.inference.predict import PredictStats, Predictor, predict_stream

    stats = PredictStats()
    predictor = None
    sys.stdout.flush()
    out = sys.stdout.buffer  # UTF-8 bytes whatever the locale, "\n" only as line ends
    try:
        predictor = Predictor(model_dir, options)
        stream = open_binary(file)
        render = _RENDER[format]
        if format == "tsv" and predictor.info.model.arch == "label":
            render = _tsv_label
        for batch in predict_stream(predictor, stream, display_name(file), stats):
            _write_batch(out, batch, render)
            out.flush()  # each batch reaches the pipe as soon as it is done
    except BrokenPipeError:
        _silence_broken_pipe()
    except KeyboardInterrupt:
        # Whole batches already written stay valid; exit as shell tools do on Ctrl-C.
        err.print("interrupted; the output lines already written are complete", highlight=False)
        raise typer.Exit(130)
    except TransducerError as e:
        try:
            out.flush()
        except BrokenPipeError:
            _silence_broken_pipe()
        _warn_stats(stats, on_long, predictor is not None and predictor.copy_unk)
        _fail(e)
    _warn_stats(stats, on_long, predictor.copy_unk)


# A renderer turns a Prediction into parts: strings, or (for a huge line, see
# predict.SpooledLine) iterables of string pieces that are streamed, never joined.


def _text(p) -> list:
    if p.nbest:  # candidates, best first, tab-separated
        return ["\t".join(c for c, _, _ in p.nbest), "\n"]
    return [_pieces(p.output), "\n"]


def _tsv(p) -> list:
    if p.nbest:  # input, then candidate<TAB>score for each candidate
        return [_pieces(p.input), *(f"\t{c}\t{score:.6g}" for c, score, _ in p.nbest), "\n"]
    return [_pieces(p.input), "\t", _pieces(p.output), "\n"]


def _tsv_label(p) -> list:
    """A label model's tsv: input<TAB>label<TAB>probability (n-best: as _tsv)."""
    if p.nbest:
        return _tsv(p)
    conf = "" if p.confidence is None else f"{p.confidence:.6g}"  # empty or copied lines
    return [_pieces(p.input), "\t", _pieces(p.output), "\t", conf, "\n"]


def _num(x):
    """A float as JSON shows it: 6 significant digits, no float noise (0.02, not
    0.020000000000000018); ints and None as they are."""
    return float(f"{x:.6g}") if isinstance(x, float) else x


def _rounded(obj):
    """`obj` with every float as _num shows it, through dicts and lists."""
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_rounded(v) for v in obj]
    return _num(obj)


def _write_json(obj) -> None:
    """One JSON object on one stdout line (a command's --json result), numbers rounded."""
    sys.stdout.write(json.dumps(_rounded(obj), ensure_ascii=False) + "\n")


def _jsonl(p) -> list:
    nbest = [{"output": c, "score": _num(sc), "probability": _num(pr)} for c, sc, pr in p.nbest] if p.nbest else None
    if isinstance(p.input, str) and isinstance(p.output, str):
        row = {"input": p.input, "output": p.output, "confidence": _num(p.confidence)}
        if nbest:
            row["nbest"] = nbest
        return [_json_safe(json.dumps(row, ensure_ascii=False)), "\n"]
    conf = json.dumps(_num(p.confidence))
    extra = f', "nbest": {_json_safe(json.dumps(nbest, ensure_ascii=False))}' if nbest else ""
    return ['{"input": "', _json_pieces(p.input), '", "output": "', _json_pieces(p.output), f'", "confidence": {conf}{extra}}}\n']


def _pieces(x):
    return x if isinstance(x, str) else x.pieces()


def _json_pieces(x):
    """A string's JSON-escaped content, piece by piece (escaping is per character)."""
    return (_json_safe(json.dumps(piece, ensure_ascii=False)[1:-1]) for piece in _pieces(x))


def _json_safe(s: str) -> str:
    """Escape the characters JSON allows raw but many line readers (Python's splitlines,
    JavaScript) take as line breaks, so a JSONL row is one line for every reader."""
    return s.replace("\x85", "\\u0085").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _write_batch(out, batch, render) -> None:
    """Encode a batch's rows as UTF-8 and write them; streamed parts go out piece by piece."""
    buf: list[str] = []
    for p in batch:
        for part in render(p):
            if isinstance(part, str):
                buf.append(part)
                continue
            out.write("".join(buf).encode("utf-8"))
            buf = []
            for piece in part:
                out.write(piece.encode("utf-8"))
    out.write("".join(buf).encode("utf-8"))


_RENDER = {"text": _text, "tsv": _tsv, "jsonl": _jsonl}


def _warn_stats(stats, on_long: str, copied: bool) -> None:
    if stats.unknown_chars:
        shown = ", ".join(f"{escape(repr(c))} x{n}" for c, n in stats.most_unknown())
        more = "" if len(stats.unknown_counts) <= 5 else ", ..."
        done = "copied through unchanged" if copied else "read as <unk>"
        err.print(
            f"[yellow]warning:[/] {stats.unknown_chars} character(s) on {stats.unknown_lines} line(s)"
            f" were not in the training data ({done}): {shown}{more}; first on line {stats.first_unknown_line}",
            highlight=False,
            soft_wrap=True,
        )
    if stats.long_lines and on_long != "error":
        done = "truncated" if on_long == "truncate" else "copied unchanged"
        err.print(
            f"[yellow]warning:[/] {stats.long_lines} line(s) longer than max_len were {done}"
            f" (first: line {stats.first_long_line})",
            highlight=False,
        )


# --- evaluate ----------------------------------------------------------------------------


@app.command(cls=_Command)
def evaluate(
    model_dir: Path = typer.Argument(..., help="Model directory written by `transducer train`."),
    test_file: str = typer.Argument(..., help="Held-out input<TAB>reference lines; an input on several lines has several references."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object (n, exact_match, wer, cer, ...; label models: accuracy, macro_f1, confusion, ...) on stdout."),
    errors: int = typer.Option(0, help="List the N worst mistakes (input, reference, prediction)."),
    beam: int = typer.Option(1, help="Beam width for seq2seq models (1: greedy)."),
    engine: str = typer.Option("numpy", help="Inference engine: numpy (no TensorFlow) | keras."),
    batch_size: int = typer.Option(1024, help="Lines per model call."),
    skip_invalid: bool = typer.Option(False, help="Leave out (and report) test rows that are not input<TAB>reference pairs, instead of stopping."),
    on_long: str = typer.Option("error", help="Inputs longer than max_len: error (an invalid row) | truncate | copy (prediction = input)."),
    encoding_errors: str = typer.Option("strict", help="Invalid UTF-8 in the test file: strict (an invalid row) | replace."),
    unk: str = typer.Option("copy", help=UNK_HELP),
    verbose: bool = typer.Option(False, help=VERBOSE_HELP),
):
    """Exact match, word error rate and character error rate on a test file, on stdout
    (label models: accuracy, macro-F1 and a confusion table).

    Example:

        transducer evaluate models/dates sample_data/dates.test.tsv --errors 5

        transducer evaluate models/dates sample_data/dates.test.tsv --json | jq .exact_match

        transducer evaluate models/langid sample_data/langid.test.tsv --json | jq .macro_f1
    """
    try:
        options = PredictOptions(
            engine=engine, beam=beam, unk=unk, on_long=on_long, encoding_errors=encoding_errors, batch_size=batch_size
        )
    except TransducerError as e:
        raise typer.BadParameter(str(e)) from None
    if errors < 0:
        raise typer.BadParameter("must be >= 0", param_hint="--errors")
    _quiet_tensorflow(verbose)
    from transducer.inference.evaluate import evaluate as run_evaluate

    try:
        report = run_evaluate(model_dir, test_file, options, skip_invalid=skip_invalid)
    except TransducerError as e:
        _fail(e)
    if report.skipped:
        err.print(
            f"[yellow]skipped {report.skipped} invalid row(s):[/] {escape(report.skipped_detail)}",
            highlight=False,
            soft_wrap=True,
        )
    # The result on stdout: the JSON object with --json (the tables then go to stderr, for people).
    shown = err if json_out else out
    if hasattr(report, "confusion"):  # a label model
        _render_label_report(report, escape(f"{model_dir} on {test_file}"), errors, shown)
        if json_out:
            _write_json(report.to_dict(errors))
        return
    table = Table(title=escape(f"{model_dir} on {test_file}"), title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("lines (distinct inputs)", f"{report.n} ({report.n_inputs})")
    table.add_row("exact match", f"{report.exact_match:.4f}")
    table.add_row("word error rate", f"{report.wer:.4f}")
    table.add_row("character error rate", f"{report.cer:.4f}")
    shown.print(table)
    if errors and report.mistakes:
        worst = Table(title=f"worst {min(errors, len(report.mistakes))} mistakes", title_justify="left")
        for col in ("input", "reference", "prediction", "edits"):
            worst.add_column(col, justify="right" if col == "edits" else "left")
        for m in report.mistakes[:errors]:
            worst.add_row(escape(m.input), escape(m.reference), escape(m.prediction), str(m.distance))
        shown.print(worst)
    if json_out:
        _write_json(report.to_dict(errors))


def _render_label_report(report, title: str, errors: int, shown: Console) -> None:
    """Accuracy, macro-F1 and the confusion table, printed on `shown`."""
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("lines (distinct inputs)", f"{report.n} ({report.n_inputs})")
    table.add_row("accuracy", f"{report.accuracy:.4f}")
    table.add_row("macro-F1", f"{report.macro_f1:.4f}")
    shown.print(table)
    confusion = Table(title="confusion (rows: reference, columns: predicted)", title_justify="left")
    confusion.add_column("reference", style="bold")
    for label in report.labels:
        confusion.add_column(escape(label), justify="right")
    confusion.add_column("recall", justify="right")
    confusion.add_column("F1", justify="right")
    for i, (label, row) in enumerate(zip(report.labels, report.confusion)):
        stats = report.per_label[label]
        cells = [f"[bold]{n}[/]" if j == i else (str(n) if n else "·") for j, n in enumerate(row)]  # bold: right
        confusion.add_row(escape(label), *cells, f"{stats['recall']:.3f}", f"{stats['f1']:.3f}")
    shown.print(confusion)
    if errors and report.mistakes:
        worst = Table(title=f"first {min(errors, len(report.mistakes))} mistakes", title_justify="left")
        for col in ("input", "reference", "prediction"):
            worst.add_column(col)
        for m in report.mistakes[:errors]:
            worst.add_row(escape(m.input), escape(m.reference), escape(m.prediction))
        shown.print(worst)


# --- explain -----------------------------------------------------------------------------


@app.command(cls=_Command)
def explain(
    model_dir: Path = typer.Argument(..., help="Model directory written by `transducer train`."),
    text: str = typer.Argument(..., help="One input string (quote it if it has spaces)."),
    json_out: bool = typer.Option(False, "--json", help="Print the numbers (steps, probabilities, attention rows) as one JSON object."),
    engine: str = typer.Option("numpy", help="Inference engine: numpy (no TensorFlow) | keras."),
    top: int = typer.Option(3, help="Most probable symbols listed at each step."),
    verbose: bool = typer.Option(False, help=VERBOSE_HELP),
):
    """Show why the model gives its output for TEXT: each step's probabilities and, for
    seq2seq, the attention heat-map (rows: output characters, columns: input characters).

    Examples:

        transducer explain models/dates "March 3, 2021"

        transducer explain models/dates "March 3, 2021" --json | jq .output
    """
    _choice(engine, ENGINES, "--engine")
    if top < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--top")
    _quiet_tensorflow(verbose)
    from transducer.inference.explain import explain as run_explain

    try:
        ex = run_explain(model_dir, text, engine=engine, top=top)
    except TransducerError as e:
        _fail(e)
    if json_out:
        _write_json(ex.to_dict())
        return
    lines = _explanation_lines(ex)
    out.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)


def _show(ch: str) -> str:
    """A character as one terminal cell: control, combining and wide characters as ·."""
    if ch == " ":
        return "␣"
    if not ch.isprintable() or unicodedata.combining(ch) or unicodedata.east_asian_width(ch) in "WF":
        return "·"
    return ch


def _explanation_lines(ex) -> list[str]:
    from transducer.ui.charts import SHADE_LEGEND, shade

    lines = [f"input:  {ex.text!r}", f"output: {ex.output!r}  (probability {ex.probability:.4g}, {ex.arch} model, {ex.engine} engine)"]
    if ex.unknown:
        done = "read as <unk>" + ("; copied through unchanged" if ex.arch == "aligned" else "")
        lines.append(f"note: {', '.join(repr(c) for c in ex.unknown)} not in the training data: {done}")
    tops = ["  ".join(f"{c.symbol} {c.probability:.3f}" for c in s.top) for s in ex.steps]
    label_w = max([5, *(len(s.symbol) for s in ex.steps)])
    lines.append("")
    if ex.arch == "aligned":
        lines.append(f"{'pos':>3}  {'in':<{label_w}}  {'out':<{label_w}}  {'p':<6}  most probable")
        for t, (s, alts) in enumerate(zip(ex.steps, tops)):
            seen = ex.input_symbols[t] if t < len(ex.input_symbols) else "<pad>"
            lines.append(f"{t + 1:>3}  {seen:<{label_w}}  {s.symbol:<{label_w}}  {s.probability:.4f}  {alts}")
        return lines
    if not ex.has_attention:
        lines.append("(this model has no attention: --attention none)")
    n = len(ex.text)
    header = "".join(f"{_show(c)} " for c in ex.text)
    if ex.has_attention:
        lines.append(f"attention: a row per output step, a column per input character, pad = the padding after it ({SHADE_LEGEND})")
        lines.append(f"{'out':<{label_w}}  {'p':<6}  {header}│pad│  most probable")
    else:
        lines.append(f"{'out':<{label_w}}  {'p':<6}  most probable")
    for s, alts in zip(ex.steps, tops):
        row = f"{s.symbol:<{label_w}}  {s.probability:.4f}  "
        if s.attention is not None:
            cells = "".join(shade(w) * 2 for w in s.attention[:n])
            row += f"{cells}│{shade(sum(s.attention[n:])) * 3}│  "
        lines.append(row + alts)
    return lines


# --- export ------------------------------------------------------------------------------


@app.command(cls=_Command)
def export(
    model_dir: Path = typer.Argument(..., help="Model directory written by `transducer train`."),
    verbose: bool = typer.Option(False, help=VERBOSE_HELP),
):
    """Write MODEL_DIR/weights.npz (the numpy engine's weights) from model.keras; print its path.

    `train` writes it already; use this for models trained before it did, or after
    replacing model.keras. The file is replaced atomically. For an ensemble, every
    member's weights.npz is written.

    Example:

        transducer export models/translit && echo привет | transducer predict models/translit
    """
    _quiet_tensorflow(verbose)
    try:
        from transducer.inference.ensemble import export_model_dir

        paths = export_model_dir(model_dir)
    except TransducerError as e:
        _fail(e)
    for path in paths:
        sys.stdout.write(f"{path}\n")


# --- summarize ---------------------------------------------------------------------------


@app.command(cls=_Command)
def summarize(
    model_dir: Optional[Path] = typer.Argument(None, help="Model directory; omit to build from the options below."),
    input_size: int = typer.Option(15, help="One-hot input width (without a model directory)."),
    output_size: Optional[int] = typer.Option(None, help="Output vocabulary size (default: --input-size)."),
    max_len: int = typer.Option(64, help="Sequence length."),
    hidden: int = typer.Option(16, help="GRU units."),
    layers: int = typer.Option(1, help="Stacked GRU layers."),
    bidirectional: bool = typer.Option(False, help="Bidirectional GRUs."),
    head: str = typer.Option("dense", help=f"Output layer: {' | '.join(HEADS)}."),
    reset_after: bool = typer.Option(True, help="Keras 3 GRU (default); --no-reset-after gives Keras 2's counts."),
    return_sequences: bool = typer.Option(True, help="--no-return-sequences: the sequence-to-label model, the same as --arch label."),
    arch: str = typer.Option("aligned", help=f"Architecture: {' | '.join(ARCHS)}."),
    attention: str = typer.Option("luong", help=f"seq2seq attention: {' | '.join(ATTENTIONS)}."),
    compare_heads: bool = typer.Option(False, help="Build both heads with the same weights, compare outputs and speed."),
    json_out: bool = typer.Option(False, "--json", help="With DIR: print its training curves, final metrics and hyperparameters as one JSON object (no TensorFlow)."),
    verbose: bool = typer.Option(False, help=VERBOSE_HELP),
):
    """Show the network as a table: layers, output shapes, parameter counts.

    Examples:

        transducer summarize models/translit

        transducer summarize models/translit --json | jq .best_epoch

        transducer summarize --input-size 15 --max-len 64 --hidden 16 --head time-distributed --no-reset-after
    """
    _choice(head, HEADS, "--head")
    _choice(arch, ARCHS, "--arch")
    _choice(attention, ATTENTIONS, "--attention")
    if json_out and model_dir is None:
        raise typer.BadParameter("needs a model directory (DIR)", param_hint="--json")
    _quiet_tensorflow(verbose)
    try:
        if json_out:
            from transducer.core.history import read_training_summary

            _write_json(read_training_summary(model_dir).to_dict())
            return
        if model_dir is not None:
            _summarize_dir(model_dir)
            return
        if not return_sequences:  # the last GRU returns one vector: the label model
            if arch == "seq2seq":
                raise TransducerError("--no-return-sequences is the label model; it does not combine with --arch seq2seq")
            arch = "label"
        cfg = ModelConfig(
            arch=arch, max_len=max_len, hidden=hidden, layers=layers, bidirectional=bidirectional,
            reset_after=reset_after, head=head, attention=attention,
            input_vocab_size=input_size, output_vocab_size=output_size or input_size,
        )
        if compare_heads:
            _compare_heads(cfg)
            return
        from transducer.networks.build import build_model
        from transducer.networks.introspect import layer_rows

        out.print(_layer_table(layer_rows(build_model(cfg)), title=f"{arch} model"))
    except TransducerError as e:
        _fail(e)


def _layer_table(rows, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("Layer (type)")
    table.add_column("Output Shape")
    table.add_column("Param #", justify="right")
    for name, kind, shape, params in rows:
        table.add_row(f"{name} ({kind})", shape, f"{params:,}")
    total = sum(r[3] for r in rows)
    table.add_section()
    table.add_row("Total params", "", f"{total:,}")
    return table


def _summarize_dir(model_dir: Path) -> None:
    from transducer.networks.saved import load_keras_model
    from transducer.core.artifacts import read_info, read_members, read_metrics
    from transducer.networks.introspect import layer_rows

    info = read_info(model_dir)
    members = read_members(info)  # an ensemble whose members disagree fails before any table
    model = load_keras_model(info)
    out.print(_layer_table(layer_rows(model), title=f"{escape(str(model_dir))} ({info.model.arch})"))
    cfg = Table(title="config", title_justify="left", show_header=False)
    m = info.model
    for k, v in (
        ("architecture", m.arch), ("head", m.head), ("max_len", m.max_len), ("hidden", m.hidden),
        ("layers", m.layers), ("bidirectional", m.bidirectional), ("reset_after", m.reset_after),
        ("input vocab", f"{len(info.input_vocab)} symbols"), _output_row(info),
        ("trained on", f"{info.raw.get('data', {}).get('n_train', '?')} pairs"),
        ("transducer version", info.raw.get("transducer_version", "?")),
    ):
        if k == "attention" and m.arch != "seq2seq":
            continue
        cfg.add_row(k, str(v))
    if m.arch == "seq2seq":
        cfg.add_row("attention", m.attention)
    cfg.add_row("dropout", str(m.dropout))
    cfg.add_row("normalize", m.normalize)
    out.print(cfg)
    from transducer.core.history import read_training_summary

    _render_training(read_training_summary(info.path))
    _summarize_members(info, members, read_metrics(info.path))


def _render_training(summary) -> None:
    """How the model was trained: hyperparameters and time, final metrics, curves."""
    from transducer.ui.charts import epoch_plot, sparkline
    from transducer.ui.progress import duration, fmt_value, ordered

    hp = dict(summary.hyperparameters)
    t = Table(title="training", title_justify="left", show_header=False)
    t.add_row("epochs", f"{summary.epochs_run} run (at most {hp.pop('epochs', '?')})")
    t.add_row("best epoch", str(summary.best_epoch or "?"))
    if summary.train_seconds is not None:
        per = summary.train_seconds / max(summary.epochs_run, 1)
        t.add_row("training time", f"{duration(summary.train_seconds)} ({duration(per)} per epoch)")
    first = ("batch_size", "learning_rate")  # then the rest as config.json lists them (schedule...), seed last
    for k in [*[k for k in first if k in hp], *[k for k in hp if k not in first and k != "seed"], "seed"]:
        if k in hp:
            t.add_row(k.replace("_", " "), str(hp[k]))
    out.print(t)
    if summary.final:
        names = summary.final_names()
        mt = Table(title=f"final metrics (epoch {summary.best_epoch}'s weights)", title_justify="left")
        mt.add_column("metric")
        mt.add_column("value", justify="right")
        for k, v in ordered(summary.final):
            mt.add_row(names[k], f"{v:.4f}")
        out.print(mt)
    curves, names = summary.curves, summary.curve_names()
    if not curves:
        return
    plots = (
        ({"loss": "●", "val_loss": "○"}, "loss per epoch"),
        ({"val_exact_match": "●"}, "validation exact match per epoch"),
        ({"val_accuracy": "●"}, "validation accuracy per epoch"),  # a label model's
    )
    for marks, title in plots:
        marks = {k: m for k, m in marks.items() if k in curves}
        if marks:
            legend = ", ".join(f"{m} {names[k]}" for k, m in marks.items()) + (", ◉ both" if len(marks) > 1 else "")
            out.print(f"{title} ({legend})", markup=False, highlight=False, soft_wrap=True)
            lines = epoch_plot({k: curves[k] for k in marks}, marks, summary.best_epoch)
            out.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)
    ct = Table(title="per-epoch curves", title_justify="left")
    for col in ("curve", "epoch 1", f"best (epoch {summary.best_epoch})", "last", "trend"):
        ct.add_column(col, justify="left" if col in ("curve", "trend") else "right", no_wrap=col == "trend")
    best = summary.best_epoch - 1
    for k, vals in ordered(curves):
        at_best = fmt_value(k, vals[best]) if 0 <= best < len(vals) else ""
        ct.add_row(names[k], fmt_value(k, vals[0]), at_best, fmt_value(k, vals[-1]), sparkline(vals))
    out.print(ct)


def _summarize_members(info, members: list, metrics: dict) -> None:
    """An ensemble: how many members, and each member's validation metrics."""
    from transducer.core.artifacts import member_dir, read_metrics

    if len(members) == 1:
        return
    seeds = info.raw.get("ensemble", {}).get("seeds") or ["?"] * len(members)
    t = Table(title=f"ensemble of {len(members)} members (the layer table is each member's)", title_justify="left")
    for col in ("member", "seed", "directory", "best epoch", "val loss", "exact match (decoded)", "CER"):
        t.add_column(col, justify="left" if col == "directory" else "right")
    fmt = lambda d, k: f"{d[k]:.4f}" if k in d else ""  # noqa: E731
    for k, m in enumerate(members, 1):
        mm = read_metrics(member_dir(info.path, k))
        final = mm.get("final", {})
        t.add_row(
            str(k), str(seeds[k - 1]), "(top level)" if k == 1 else str(m.path.relative_to(info.path)),
            f"{mm.get('best_epoch', '?')} of {mm.get('epochs_run', '?')}",
            fmt(final, "loss"), fmt(final, "decoded_exact_match"), fmt(final, "cer"),
        )
    combined = metrics.get("ensemble", {}).get("final", {})
    if combined:
        t.add_section()
        t.add_row("ensemble", "", "", "", "", fmt(combined, "decoded_exact_match"), fmt(combined, "cer"))
    out.print(t)


def _output_row(info) -> tuple[str, str]:
    """The config table's output vocabulary row; a label model lists its labels."""
    n = len(info.output_vocab)
    if info.model.arch != "label":
        return "output vocab", f"{n} symbols"
    shown = escape(", ".join(info.output_vocab.symbols[:20])) + (f", ... ({n - 20} more)" if n > 20 else "")
    return "labels", f"{n}: {shown}"


HEADS_EXPLAINED = (
    "Dense applied to a 3-D tensor (batch, time, features) already acts on the last axis: the "
    "same kernel and bias are used at every timestep. TimeDistributed(Dense) states that "
    "explicitly by mapping the same Dense over the time axis. Same parameters "
    "(hidden x vocab + vocab), same outputs for the same weights; the only difference is how "
    "the computation is laid out, which shows up as speed."
)


def _compare_heads(cfg: ModelConfig) -> None:
    from transducer.networks.introspect import compare_heads

    r = compare_heads(cfg)
    tables = (_layer_table(r["dense_rows"], "head: dense"), _layer_table(r["td_rows"], "head: time-distributed"))
    if out.width >= 120:
        side = Table.grid(padding=(0, 4))
        side.add_row(*tables)
        out.print(side)
    else:  # too narrow for two tables side by side: one above the other
        out.print(*tables)
    t = Table(title=f"same weights, same random batch of {r['batch']}", title_justify="left")
    t.add_column("")
    t.add_column("Dense", justify="right")
    t.add_column("TimeDistributed(Dense)", justify="right")
    t.add_row("whole model, ms/batch", f"{r['dense_seconds'] * 1e3:.2f}", f"{r['td_seconds'] * 1e3:.2f}")
    t.add_row("head alone (eager call), ms/batch", f"{r['dense_head_seconds'] * 1e3:.3f}", f"{r['td_head_seconds'] * 1e3:.3f}")
    ratio = r["td_seconds"] / max(r["dense_seconds"], 1e-12)
    head_ratio = r["td_head_seconds"] / max(r["dense_head_seconds"], 1e-12)
    t.add_row("TimeDistributed / Dense", "", f"{ratio:.2f}x model, {head_ratio:.2f}x head")
    out.print(t)
    out.print(f"max |Dense - TimeDistributed| over all outputs: {r['max_abs_diff']:.3g}", highlight=False)
    out.print(HEADS_EXPLAINED, highlight=False)


def main() -> None:
    try:
        app()
    except BrokenPipeError:
        _silence_broken_pipe()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


def _silence_broken_pipe() -> None:
    """Downstream closed the pipe (`| head -1`): exit quietly, as shell tools do."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
    sys.exit(141)


if __name__ == "__main__":
    main()
