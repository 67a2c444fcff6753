"""Command line: parse options, call the Python API (transducer/api.py), render the result
(transducer/ui).

stdout carries each command's result: predict's lines, evaluate's report (or --json),
summarize's tables, export's paths. Everything else (progress, warnings, errors) goes to
stderr, so `transducer evaluate m t.tsv > report.txt` keeps the report and a pipe gets
only data. TensorFlow (and numpy) are imported inside the commands that need them, so
`transducer --help` and argument errors stay fast.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from transducer._version import __version__
from transducer.core.config import (
    CACHE_LINES, Arch, Attention, Combine, Distribute, EncodingErrors, Engine, Format, Head, LogFormat, LrSchedule,
    ModelConfig, Normalize, OnLong, TransducerError, Unk,
)
from transducer.ui import render
from transducer.ui.help import Command as _Command, Group as _Group
from transducer.ui.render import Output


app = typer.Typer(
    cls=_Group,
    add_completion=True,  # --install-completion / --show-completion
    no_args_is_help=True,
    help="Train and run character-level recurrent string-to-string models.",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)
out = Output()  # a command's result (tables, pictures): stdout; unlimited width off a terminal
err = Output(stderr=True)  # progress, warnings, errors: stderr


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"transducer {__version__}\n")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False,
):
    """Train and run character-level recurrent string-to-string models."""


# --- options shared by several commands ----------------------------------------------------

ModelDir = Annotated[Path, typer.Argument(help="Model directory written by `transducer train`.")]
Verbose = Annotated[bool, typer.Option(help="Show TensorFlow's own logs (silenced by default).")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object on stdout (numbers rounded).")]
EngineOpt = Annotated[Engine, typer.Option(help="Inference engine: numpy (no TensorFlow) or keras.")]
Beam = Annotated[int, typer.Option(help="seq2seq beam width (1: greedy); aligned: >1 searches the exact best strings; label: no effect.")]
BatchSize = Annotated[int, typer.Option(help="Lines per model call.")]
OnLongOpt = Annotated[OnLong, typer.Option(help="Inputs longer than max_len: error | truncate | copy (the output is the input).")]
EncodingOpt = Annotated[EncodingErrors, typer.Option(help="Invalid UTF-8 input: strict (an error) | replace.")]
UnkOpt = Annotated[Unk, typer.Option(help=(
    "Characters never seen in training, aligned models: copy (through unchanged, at their position)"
    " | model (read as <unk>; the model may end the string there). seq2seq models always read <unk>."
))]
CombineOpt = Annotated[Combine, typer.Option(help=(
    "An ensemble's rule: mean (of the members' step distributions; one architecture) | vote (each member"
    " decodes, the majority wins) | rescore (every member scores every member's n-best; any architectures)."
))]
ArchOpt = Annotated[Arch, typer.Option(help="Architecture (label: the second column is one label per string).")]
HeadOpt = Annotated[Head, typer.Option(help="Per-timestep output layer (label models: dense only).")]
AttentionOpt = Annotated[Attention, typer.Option(help="seq2seq attention.")]
Hidden = Annotated[int, typer.Option(help="Units in each GRU layer.")]
Layers = Annotated[int, typer.Option(help="Stacked GRU layers.")]
Bidirectional = Annotated[bool, typer.Option(help="Read the input both ways (each position sees all of it).")]
ResetAfter = Annotated[bool, typer.Option(help="GRU reset gate after the matmul (Keras 3 default); --no-reset-after is Keras 2's.")]
MaxLen = Annotated[int, typer.Option(help="Longest input/output string in characters (of the --normalize form).")]


def _plain(value):
    """A parsed option as the library takes it: Enum members as their strings, paths as str."""
    if isinstance(value, Enum):
        return value.value
    return str(value) if isinstance(value, Path) else value


def _quiet_tensorflow(verbose: bool) -> None:
    """Decide, before TensorFlow is first imported, whether its logs are shown."""
    os.environ["TRANSDUCER_VERBOSE"] = "1" if verbose else "0"
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0" if verbose else "3"
    if not verbose:
        import warnings

        warnings.filterwarnings("ignore", module="keras")
        warnings.filterwarnings("ignore", module="tensorflow")


def _fail(e: TransducerError) -> None:
    render.error(err, str(e))
    raise typer.Exit(e.exit_code)


def _load(model_dir: Path, **options):
    """api.load with the command's options (checked before the model is read)."""
    from transducer.api import load

    try:
        return load(model_dir, **{k: _plain(v) for k, v in options.items()})
    except TransducerError as e:
        _fail(e)


# --- train -------------------------------------------------------------------------------


@app.command(cls=_Command)
def train(
    ctx: typer.Context,
    pairs: Annotated[str, typer.Argument(help="UTF-8 file of input<TAB>output lines; - reads stdin.")],
    model_dir: Annotated[Path, typer.Option("--model-dir", "-m", help="Directory to write the model to.")],
    arch: ArchOpt = Arch.ALIGNED,
    head: HeadOpt = Head.DENSE,
    hidden: Hidden = 128,
    layers: Layers = 1,
    bidirectional: Bidirectional = False,
    dropout: Annotated[Optional[float], typer.Option(help="Dropout after each GRU layer (seq2seq: and on attention weights). Default: aligned 0, seq2seq 0.1.")] = None,
    reset_after: ResetAfter = True,
    attention: AttentionOpt = Attention.LUONG,
    max_len: MaxLen = 64,
    normalize: Annotated[Optional[Normalize], typer.Option(help="Unicode normalization of training pairs and, later, of inputs (default: aligned none, seq2seq nfd).")] = None,
    epochs: Annotated[int, typer.Option(help="Maximum epochs (early stopping usually ends sooner).")] = 30,
    batch_size: Annotated[int, typer.Option(help="Sequences per training step (per replica with --distribute).")] = 64,
    learning_rate: Annotated[float, typer.Option(help="Adam learning rate.")] = 3e-3,
    val_split: Annotated[float, typer.Option(help="Fraction of pairs held out for validation.")] = 0.1,
    val_file: Annotated[Optional[str], typer.Option(help="Validation pairs file (instead of --val-split).")] = None,
    patience: Annotated[Optional[int], typer.Option(help="Epochs without improvement before stopping (default: aligned 2, seq2seq 4).")] = None,
    min_delta: Annotated[Optional[float], typer.Option(help=(
        "Smallest validation-loss drop that counts as improvement: aligned, absolute (default 1e-3);"
        " seq2seq, a fraction of the best loss (default 1e-3 = 0.1%)."))] = None,
    lr_schedule: Annotated[Optional[LrSchedule], typer.Option(help=(
        "Learning-rate schedule (plateau: halve after --lr-patience epochs without improvement; cosine: fall"
        " towards 0 over --epochs, for a fixed time budget). Default: aligned constant, seq2seq plateau."))] = None,
    lr_patience: Annotated[Optional[int], typer.Option(help="plateau: epochs without improvement before halving (default 2).")] = None,
    label_smoothing: Annotated[Optional[float], typer.Option(help=(
        "Spread this share of each target's probability over all symbols (default: aligned 0, seq2seq 0.1);"
        " confidences then stay below 1 - this share."))] = None,
    init_from: Annotated[Optional[Path], typer.Option(help="Start from this trained model's weights and vocabularies (architecture options default to its own).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed: same seed and data give the same model on CPU.")] = 0,
    skip_invalid: Annotated[bool, typer.Option(help="Skip invalid rows (reported) instead of stopping.")] = False,
    distribute: Annotated[Distribute, typer.Option(help="tf.distribute strategy (multi-worker reads TF_CONFIG).")] = Distribute.NONE,
    force: Annotated[bool, typer.Option(help="Replace an existing model directory.")] = False,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run from its last epoch checkpoint (same command otherwise; --epochs may change).")] = False,
    ensemble: Annotated[Optional[int], typer.Option(help=(
        "Train N members (seeds --seed, --seed+1, ...) into one model directory; predict and evaluate average"
        " them. Default 1, or with --init-from as many as that model has."))] = None,
    teacher: Annotated[Optional[str], typer.Option(help=(
        "Distil: train on this model's beam outputs (e.g. an ensemble's) for the training inputs"
        " instead of their references; validation stays on references."))] = None,
    extra_inputs: Annotated[Optional[str], typer.Option(help="With --teacher: a file of unlabeled strings, one a line, that the teacher labels for training too.")] = None,
    log_format: Annotated[Optional[LogFormat], typer.Option(help="Progress on stderr (default: rich on a terminal, plain otherwise).")] = None,
    verbose: Verbose = False,
):
    """Train a model on PAIRS and save it to --model-dir.

    Every option is also api.TrainOptions' field of the same name (transducer.train).

    Examples:

        transducer train sample_data/translit.train.tsv -m models/translit

        nohup transducer train sample_data/translit.train.tsv \\
            -m models/translit --log-format jsonl 2> train.log &

        transducer train sample_data/langid.train.tsv -m models/langid \\
            --arch label --bidirectional --hidden 64 --max-len 20
    """
    _quiet_tensorflow(verbose)
    from transducer.api import TrainOptions, run_training
    from transducer.ui import progress

    fields = {f.name for f in dataclasses.fields(TrainOptions)}
    given = frozenset(k for k in fields if ctx.get_parameter_source(k).name != "DEFAULT")
    try:
        options = TrainOptions(**{k: _plain(v) for k, v in ctx.params.items() if k in fields})
        reporter = progress.make_reporter(_plain(log_format), err)
        try:
            on_member = lambda *event: progress.member_event(reporter, *event)  # noqa: E731
            result = run_training(pairs, model_dir, options, given, reporter=reporter, on_member=on_member)
        finally:
            reporter.close()
    except TransducerError as e:
        _fail(e)
    ensemble_run = hasattr(result, "members")
    if ensemble_run:
        progress.ensemble_end(reporter, result)
    else:
        reporter.end(result)
    if result.interrupted:
        from transducer.training.checkpoint import SIGNAL_EXIT

        progress.interrupted(err, result, ensemble_run)
        raise typer.Exit(SIGNAL_EXIT.get(result.signal, 130))


# --- predict -----------------------------------------------------------------------------


@app.command(cls=_Command)
def predict(
    model_dir: ModelDir,
    file: Annotated[str, typer.Argument(help="Input file, one string per line; - or omitted reads stdin.")] = "-",
    format: Annotated[Format, typer.Option("--format", "-f", help="Output: text | tsv (input<TAB>output) | jsonl.")] = Format.TEXT,
    on_long: OnLongOpt = OnLong.ERROR,
    encoding_errors: EncodingOpt = EncodingErrors.STRICT,
    batch_size: BatchSize = 1024,
    engine: EngineOpt = Engine.NUMPY,
    beam: Beam = 1,
    nbest: Annotated[int, typer.Option(help=(
        "Candidates per line (at most --beam; alone it sets --beam K): tab-separated in text, with scores in"
        " tsv/jsonl (label models: the K most probable labels)."))] = 1,
    unk: UnkOpt = Unk.COPY,
    cache: Annotated[int, typer.Option(help="Distinct lines whose results are kept and reused (about 250 bytes each); 0 computes every line.")] = CACHE_LINES,
    combine: CombineOpt = Combine.MEAN,
    verbose: Verbose = False,
):
    """Predict one output line per input line, in order, on stdout.

    Each line is answered as soon as it is read when the input pauses (a terminal, `tail -f`);
    a fast producer fills whole batches.

    Examples:

        cat sample_data/demo_inputs.txt \\
            | transducer predict models/translit > out.txt

        cat sample_data/dates_demo_inputs.txt \\
            | transducer predict models/dates --beam 5 --nbest 3 -f jsonl
    """
    _quiet_tensorflow(verbose)
    try:
        _check_input_file(file, model_dir)
    except TransducerError as e:
        _fail(e)
    model = _load(model_dir, engine=engine, beam=beam, nbest=nbest, unk=unk, on_long=on_long,
                  encoding_errors=encoding_errors, batch_size=batch_size, cache=cache, combine=combine)
    from transducer.inference.predict import PredictStats

    stats = PredictStats()
    sys.stdout.flush()
    stdout = sys.stdout.buffer  # UTF-8 bytes whatever the locale, "\n" only as line ends
    try:
        write = render.renderer(format.value, model.config.arch)
        for batch in model.predict_file(file, stats):
            render.write_batch(stdout, batch, write)
            stdout.flush()  # each batch reaches the pipe as soon as it is done
    except BrokenPipeError:
        _silence_broken_pipe()
    except KeyboardInterrupt:
        # Whole batches already written stay valid; exit as shell tools do on Ctrl-C.
        err.print("interrupted; the output lines already written are complete", highlight=False)
        raise typer.Exit(130)
    except TransducerError as e:
        try:
            stdout.flush()
        except BrokenPipeError:
            _silence_broken_pipe()
        _warn_stats(stats, model)
        _fail(e)
    _warn_stats(stats, model)


def _check_input_file(file: str, model_dir: Path) -> None:
    """A FILE that does not exist is often text meant as input: say how to give text."""
    if file == "-" or Path(file).exists():
        return
    d, q = shlex.quote(str(model_dir)), shlex.quote(file)
    raise TransducerError(
        f"{file}: no such file. predict reads lines from a file or stdin; to predict this text, pipe it in:"
        f" echo {q} | transducer predict {d}  (or see why the model answers it: transducer explain {d} {q})"
    )


def _warn_stats(stats, model) -> None:
    for said in render.predict_warnings(stats, model.options.on_long, model.copies_unseen, model.info.model.arch):
        render.warn(err, "warning:", said)


# --- evaluate ----------------------------------------------------------------------------


@app.command(cls=_Command)
def evaluate(
    model_dir: ModelDir,
    test_file: Annotated[str, typer.Argument(help="Held-out input<TAB>reference lines; an input on several lines has several references.")],
    json_out: JsonOut = False,
    errors: Annotated[int, typer.Option(min=0, help="List the N worst mistakes (input, reference, prediction).")] = 0,
    beam: Beam = 1,
    engine: EngineOpt = Engine.NUMPY,
    batch_size: BatchSize = 1024,
    skip_invalid: Annotated[bool, typer.Option(help="Leave out (and report) test rows that are not input<TAB>reference pairs, instead of stopping.")] = False,
    on_long: OnLongOpt = OnLong.ERROR,
    encoding_errors: EncodingOpt = EncodingErrors.STRICT,
    unk: UnkOpt = Unk.COPY,
    combine: CombineOpt = Combine.MEAN,
    verbose: Verbose = False,
):
    """Exact match, word error rate and character error rate on a test file, on stdout
    (label models: accuracy, macro-F1 and a confusion table).

    Redirected to a file, the tables are written whole and the mistakes as tab-separated
    lines. With --json the JSON object is the result (tables go to stderr).

    Examples:

        transducer evaluate models/dates sample_data/dates.test.tsv \\
            --errors 5

        transducer evaluate models/dates sample_data/dates.test.tsv \\
            --json | jq .cer

        transducer evaluate models/langid sample_data/langid.test.tsv
    """
    _quiet_tensorflow(verbose)
    model = _load(model_dir, engine=engine, beam=beam, unk=unk, on_long=on_long, encoding_errors=encoding_errors,
                  batch_size=batch_size, combine=combine)
    try:
        report = model.evaluate(test_file, skip_invalid=skip_invalid)
    except TransducerError as e:
        _fail(e)
    if report.skipped:
        render.warn(err, f"skipped {report.skipped} invalid row(s):", report.skipped_detail)
    # The result on stdout: the JSON object with --json (the tables then go to stderr, for people).
    render.evaluate_report(err if json_out else out, report, f"{model_dir} on {test_file}", errors)
    if json_out:
        sys.stdout.write(render.json_line(report.to_dict(errors)) + "\n")


# --- explain -----------------------------------------------------------------------------


@app.command(cls=_Command)
def explain(
    model_dir: ModelDir,
    text: Annotated[str, typer.Argument(help="One input string (quote it if it has spaces).")],
    json_out: JsonOut = False,
    engine: EngineOpt = Engine.NUMPY,
    top: Annotated[int, typer.Option(min=1, help="Most probable symbols (label models: labels) listed at each step.")] = 3,
    verbose: Verbose = False,
):
    """Show why the model gives its output for TEXT: each step's probabilities and, for
    seq2seq, the attention heat-map (rows: output characters, columns: input characters);
    for a label model, the most probable labels; for an edit model, the edit script under
    the input (each action, its probability, the output so far).

    Examples:

        transducer explain models/dates "March 3, 2021"

        transducer explain models/dates "March 3, 2021" --json | jq .output
    """
    _quiet_tensorflow(verbose)
    model = _load(model_dir, engine=engine)
    try:
        ex = model.explain(text, top=top)
    except TransducerError as e:
        _fail(e)
    if json_out:
        sys.stdout.write(render.json_line(ex.to_dict()) + "\n")
        return
    out.print("\n".join(render.explanation_lines(ex)), markup=False, highlight=False, soft_wrap=True)


# --- export ------------------------------------------------------------------------------


@app.command(cls=_Command)
def export(model_dir: ModelDir, verbose: Verbose = False):
    """Write MODEL_DIR/weights.npz (the numpy engine's weights) from model.keras; print its path.

    `train` writes it already; use this for models trained before it did, or after
    replacing model.keras. The file is replaced atomically. For an ensemble, every
    member's weights.npz is written.

    Example:

        transducer export models/translit \\
            && echo привет | transducer predict models/translit
    """
    _quiet_tensorflow(verbose)
    try:
        from transducer.networks.export import export_model_dir

        paths = export_model_dir(model_dir)
    except TransducerError as e:
        _fail(e)
    for path in paths:
        sys.stdout.write(f"{path}\n")


# --- assemble ----------------------------------------------------------------------------


@app.command(cls=_Command)
def assemble(
    model_dirs: Annotated[list[Path], typer.Argument(metavar="DIR...", help="Model directories, in member order (an ensemble brings all its members).")],
    model_dir: Annotated[Path, typer.Option("--model-dir", "-m", help="Directory to write the ensemble to.")],
    force: Annotated[bool, typer.Option(help="Replace an existing model directory.")] = False,
):
    """Copy existing model directories into one ensemble (members of any architectures); print its path.

    Example:

        transducer assemble models/s2s models/edit -m models/mixed \\
            && transducer predict models/mixed words.txt --combine vote
    """
    from transducer.api import assemble as assemble_dirs

    try:
        path = assemble_dirs(model_dirs, model_dir, force=force)
    except TransducerError as e:
        _fail(e)
    sys.stdout.write(f"{path}\n")


# --- summarize ---------------------------------------------------------------------------


@app.command(cls=_Command)
def summarize(
    model_dir: Annotated[Optional[Path], typer.Argument(help="Model directory; omit to build from the options below.")] = None,
    input_size: Annotated[int, typer.Option(help="One-hot input width (without a model directory).")] = 15,
    output_size: Annotated[Optional[int], typer.Option(help="Output vocabulary size (default: --input-size).")] = None,
    max_len: Annotated[int, typer.Option(help="Sequence length.")] = 64,
    hidden: Hidden = 16,
    layers: Layers = 1,
    bidirectional: Bidirectional = False,
    head: HeadOpt = Head.DENSE,
    reset_after: ResetAfter = True,
    return_sequences: Annotated[bool, typer.Option(help="--no-return-sequences: the sequence-to-label model, the same as --arch label.")] = True,
    arch: ArchOpt = Arch.ALIGNED,
    attention: AttentionOpt = Attention.LUONG,
    compare_heads: Annotated[bool, typer.Option(help="Build both heads with the same weights, compare outputs and speed.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="With DIR: print its training curves, final metrics and hyperparameters as one JSON object (no TensorFlow).")] = False,
    verbose: Verbose = False,
):
    """Show the network as a table: layers, output shapes, parameter counts.

    Examples:

        transducer summarize models/translit

        transducer summarize models/translit --json | jq .best_epoch

        transducer summarize --input-size 15 --max-len 64 --hidden 16 \\
            --head time-distributed --no-reset-after
    """
    if json_out and model_dir is None:
        raise typer.BadParameter("needs a model directory (DIR)", param_hint="--json")
    _quiet_tensorflow(verbose)
    from transducer.ui import summary

    try:
        if json_out:
            from transducer.core.history import read_training_summary

            sys.stdout.write(render.json_line(read_training_summary(model_dir).to_dict()) + "\n")
        elif model_dir is not None:
            summary.model_dir(out, model_dir)
        else:
            cfg = ModelConfig(
                arch=_label_arch(arch.value, return_sequences), max_len=max_len, hidden=hidden, layers=layers,
                bidirectional=bidirectional, reset_after=reset_after, head=head.value, attention=attention.value,
                input_vocab_size=input_size, output_vocab_size=output_size or input_size,
            )
            (summary.compare_heads if compare_heads else summary.network)(out, cfg)
    except TransducerError as e:
        _fail(e)


def _label_arch(arch: str, return_sequences: bool) -> str:
    """--no-return-sequences: the last GRU returns one vector, which is the label model."""
    if return_sequences:
        return arch
    if arch == "seq2seq":
        raise TransducerError("--no-return-sequences is the label model; it does not combine with --arch seq2seq")
    return "label"


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
