"""Command line: parse options, call the Python API (transducer/api.py), render the result
(transducer/ui). The API is the only door into the library: this module imports nothing
from core, networks, inference or training but what api.py re-exports (an import
contract in pyproject.toml holds it to that).

Every option the API shares is declared once, as a field of api.TrainOptions or
PredictOptions (default, type, help, choices); the typer options here are built from
those fields, so `transducer train --hidden` and `transducer.train(hidden=)` cannot
drift apart. Options only the command line has (--format, --json, --verbose, ...) are
declared here.

stdout carries each command's result: predict's lines, evaluate's report (or --json),
summarize's tables, export's paths. Everything else (progress, warnings, errors) goes to
stderr, so `transducer evaluate m t.tsv > report.txt` keeps the report and a pipe gets
only data. TensorFlow (and numpy) are imported inside the commands that need them, so
`transducer --help` and argument errors stay fast.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from transducer import api
from transducer._version import __version__
from transducer.api import Format, LogFormat, PredictOptions, TrainOptions, TransducerError
from transducer.ui import render
from transducer.ui.help import Command as _Command, Group as _Group, choice


app = typer.Typer(
    cls=_Group,
    add_completion=True,  # --install-completion / --show-completion
    no_args_is_help=True,
    help="Train and run character-level recurrent string-to-string models.",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def out():
    """A command's result (tables, pictures): stdout; unlimited width off a terminal."""
    return render.shared_console()


def err():
    """Progress, warnings, errors: stderr."""
    return render.shared_console(stderr=True)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"transducer {__version__}\n")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False,
):
    """Train and run character-level recurrent string-to-string models."""


# --- options -------------------------------------------------------------------------------

# --help's panels (options with none are listed last, under "Options").
MODEL_DIR, NETWORK, TRAINING, ENSEMBLES = "Model directory", "Network", "Training", "Ensembles and distillation"
INPUT, SEARCH, SPEED, REPORT, NO_DIR = "Input", "Search", "Speed", "Report", "Without a model directory"


def opt(options: type, name: str, *decls: str, panel: str | None = None, **extra):
    """The typer option for field `name` of an options dataclass (api.TrainOptions,
    PredictOptions): the help declared there and, for a choice, its parsing
    (Choice.check) and completion. The parameter's default is the field's default."""
    field = options.__dataclass_fields__[name]
    choices = field.metadata["choices"]
    parsing = choice(choices, "--" + name.replace("_", "-")) if choices is not None else {}
    return typer.Option(*decls, help=field.metadata["help"], rich_help_panel=panel, **parsing, **extra)


ModelDir = Annotated[Path, typer.Argument(help="Model directory written by `transducer train`.")]
Verbose = Annotated[bool, typer.Option(help="Show TensorFlow's own logs (silenced by default).")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object on stdout (numbers rounded).", rich_help_panel=REPORT)]
EngineOpt = Annotated[str, opt(PredictOptions, "engine", panel=SPEED)]
Beam = Annotated[int, opt(PredictOptions, "beam", panel=SEARCH)]
BatchSize = Annotated[int, opt(PredictOptions, "batch_size", panel=SPEED)]
OnLongOpt = Annotated[str, opt(PredictOptions, "on_long", panel=INPUT)]
EncodingOpt = Annotated[str, opt(PredictOptions, "encoding_errors", panel=INPUT)]
UnkOpt = Annotated[str, opt(PredictOptions, "unk", panel=INPUT)]
CombineOpt = Annotated[str, opt(PredictOptions, "combine", panel=SEARCH)]


def _quiet_tensorflow(verbose: bool) -> None:
    """Decide, before TensorFlow is first imported, whether its logs are shown."""
    os.environ["TRANSDUCER_VERBOSE"] = "1" if verbose else "0"
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0" if verbose else "3"
    if not verbose:
        import warnings

        warnings.filterwarnings("ignore", module="keras")
        warnings.filterwarnings("ignore", module="tensorflow")


def _fail(e: TransducerError) -> None:
    """End the command with the error's one line, in the command line's words."""
    render.error(err(), e.cli_message or str(e))
    raise typer.Exit(e.exit_code)


def _load(model_dir: Path, **options):
    """api.load with the command's options (checked before the model is read)."""
    try:
        return api.load(model_dir, **options)
    except TransducerError as e:
        _fail(e)


# --- train -------------------------------------------------------------------------------


@app.command(cls=_Command)
def train(
    ctx: typer.Context,
    pairs: Annotated[str, typer.Argument(help="UTF-8 file of input<TAB>output lines; - reads stdin.")],
    model_dir: Annotated[Path, typer.Option("--model-dir", "-m", metavar="DIR", help="Directory to write the model to.", rich_help_panel=MODEL_DIR)],
    force: Annotated[bool, opt(TrainOptions, "force", panel=MODEL_DIR)] = TrainOptions.force,
    resume: Annotated[bool, opt(TrainOptions, "resume", panel=MODEL_DIR)] = TrainOptions.resume,
    init_from: Annotated[Optional[str], opt(TrainOptions, "init_from", metavar="DIR", panel=MODEL_DIR)] = TrainOptions.init_from,
    arch: Annotated[str, opt(TrainOptions, "arch", panel=NETWORK)] = TrainOptions.arch,
    head: Annotated[str, opt(TrainOptions, "head", panel=NETWORK)] = TrainOptions.head,
    hidden: Annotated[int, opt(TrainOptions, "hidden", panel=NETWORK)] = TrainOptions.hidden,
    layers: Annotated[int, opt(TrainOptions, "layers", panel=NETWORK)] = TrainOptions.layers,
    bidirectional: Annotated[bool, opt(TrainOptions, "bidirectional", panel=NETWORK)] = TrainOptions.bidirectional,
    dropout: Annotated[Optional[float], opt(TrainOptions, "dropout", panel=NETWORK)] = TrainOptions.dropout,
    reset_after: Annotated[bool, opt(TrainOptions, "reset_after", panel=NETWORK)] = TrainOptions.reset_after,
    attention: Annotated[str, opt(TrainOptions, "attention", panel=NETWORK)] = TrainOptions.attention,
    max_len: Annotated[int, opt(TrainOptions, "max_len", panel=NETWORK)] = TrainOptions.max_len,
    normalize: Annotated[Optional[str], opt(TrainOptions, "normalize", panel=NETWORK)] = TrainOptions.normalize,
    epochs: Annotated[int, opt(TrainOptions, "epochs", panel=TRAINING)] = TrainOptions.epochs,
    batch_size: Annotated[Optional[int], opt(TrainOptions, "batch_size", panel=TRAINING)] = TrainOptions.batch_size,
    learning_rate: Annotated[float, opt(TrainOptions, "learning_rate", panel=TRAINING)] = TrainOptions.learning_rate,
    val_split: Annotated[float, opt(TrainOptions, "val_split", panel=TRAINING)] = TrainOptions.val_split,
    val_file: Annotated[Optional[str], opt(TrainOptions, "val_file", metavar="FILE", panel=TRAINING)] = TrainOptions.val_file,
    patience: Annotated[Optional[int], opt(TrainOptions, "patience", panel=TRAINING)] = TrainOptions.patience,
    min_delta: Annotated[Optional[float], opt(TrainOptions, "min_delta", panel=TRAINING)] = TrainOptions.min_delta,
    lr_schedule: Annotated[Optional[str], opt(TrainOptions, "lr_schedule", panel=TRAINING)] = TrainOptions.lr_schedule,
    lr_patience: Annotated[Optional[int], opt(TrainOptions, "lr_patience", panel=TRAINING)] = TrainOptions.lr_patience,
    label_smoothing: Annotated[Optional[float], opt(TrainOptions, "label_smoothing", panel=TRAINING)] = TrainOptions.label_smoothing,
    rollin: Annotated[float, opt(TrainOptions, "rollin", metavar="K", panel=TRAINING)] = TrainOptions.rollin,
    seed: Annotated[int, opt(TrainOptions, "seed", panel=TRAINING)] = TrainOptions.seed,
    skip_invalid: Annotated[bool, opt(TrainOptions, "skip_invalid", panel=TRAINING)] = TrainOptions.skip_invalid,
    ensemble: Annotated[Optional[int], opt(TrainOptions, "ensemble", metavar="N", panel=ENSEMBLES)] = TrainOptions.ensemble,
    bootstrap: Annotated[bool, opt(TrainOptions, "bootstrap", panel=ENSEMBLES)] = TrainOptions.bootstrap,
    subsample: Annotated[float, opt(TrainOptions, "subsample", metavar="FRACTION", panel=ENSEMBLES)] = TrainOptions.subsample,
    teacher: Annotated[Optional[str], opt(TrainOptions, "teacher", metavar="DIR", panel=ENSEMBLES)] = TrainOptions.teacher,
    teacher_mode: Annotated[str, opt(TrainOptions, "teacher_mode", panel=ENSEMBLES)] = TrainOptions.teacher_mode,
    teacher_weight: Annotated[Optional[float], opt(TrainOptions, "teacher_weight", metavar="FLOAT", panel=ENSEMBLES)] = TrainOptions.teacher_weight,
    teacher_temperature: Annotated[Optional[float], opt(TrainOptions, "teacher_temperature", metavar="T", panel=ENSEMBLES)] = TrainOptions.teacher_temperature,
    extra_inputs: Annotated[Optional[str], opt(TrainOptions, "extra_inputs", metavar="FILE", panel=ENSEMBLES)] = TrainOptions.extra_inputs,
    distribute: Annotated[str, opt(TrainOptions, "distribute")] = TrainOptions.distribute,
    log_format: Annotated[Optional[str], typer.Option(
        help="Progress on stderr: rich, plain or jsonl (default: rich on a terminal, plain otherwise).",
        **choice(LogFormat, "--log-format"))] = None,
    verbose: Verbose = False,
):
    """Train a model on PAIRS and save it to --model-dir.

    Every option is also api.TrainOptions' field of the same name (transducer.train).

    Examples:

        transducer train sample_data/translit.train.tsv \\
            -m models/translit

        nohup transducer train -m models/translit \\
            sample_data/translit.train.tsv \\
            --log-format jsonl 2> train.log &

        transducer train sample_data/langid.train.tsv \\
            -m models/langid --arch label --bidirectional \\
            --hidden 64 --max-len 20
    """
    _quiet_tensorflow(verbose)
    from transducer.ui import progress

    given = frozenset(k for k in api.TRAIN_NAMES if ctx.get_parameter_source(k).name != "DEFAULT")
    try:
        options = TrainOptions(**{k: v for k, v in ctx.params.items() if k in api.TRAIN_NAMES})
        reporter = progress.make_reporter(log_format, err(), exit_on_stop=True)  # a second Ctrl-C ends it at once
        result = api.train_reported(pairs, model_dir, options, given, reporter)
    except TransducerError as e:
        _fail(e)
    if result.interrupted:
        progress.interrupted(err(), result, hasattr(result, "members"))
        raise typer.Exit(api.exit_code(result))


# --- predict -----------------------------------------------------------------------------


@app.command(cls=_Command)
def predict(
    model_dir: ModelDir,
    file: Annotated[str, typer.Argument(help="Input file, one string per line; - or omitted reads stdin.")] = "-",
    format: Annotated[str, typer.Option(
        "--format", "-f", help="Output: text, tsv (input<TAB>output) or jsonl.", **choice(Format, "--format"))] = Format.TEXT.value,
    on_long: OnLongOpt = PredictOptions.on_long,
    encoding_errors: EncodingOpt = PredictOptions.encoding_errors,
    unk: UnkOpt = PredictOptions.unk,
    beam: Beam = PredictOptions.beam,
    nbest: Annotated[int, opt(PredictOptions, "nbest", panel=SEARCH)] = PredictOptions.nbest,
    batch_size: BatchSize = PredictOptions.batch_size,
    engine: EngineOpt = PredictOptions.engine,
    cache: Annotated[int, opt(PredictOptions, "cache", panel=SPEED)] = PredictOptions.cache,
    combine: CombineOpt = PredictOptions.combine,
    verbose: Verbose = False,
):
    """Predict one output line per input line, in order, on stdout.

    Each line is answered as soon as it is read when the input pauses (a terminal, `tail -f`);
    a fast producer fills whole batches.

    Examples:

        cat sample_data/demo_inputs.txt \\
            | transducer predict models/translit > out.txt

        cat sample_data/dates_demo_inputs.txt \\
            | transducer predict models/dates \\
                --beam 5 --nbest 3 -f jsonl
    """
    _quiet_tensorflow(verbose)
    try:
        _check_input_file(file, model_dir)
    except TransducerError as e:
        _fail(e)
    model = _load(model_dir, engine=engine, beam=beam, nbest=nbest, unk=unk, on_long=on_long,
                  encoding_errors=encoding_errors, batch_size=batch_size, cache=cache, combine=combine)
    stats = api.predict_stats()
    sys.stdout.flush()
    stdout = sys.stdout.buffer  # UTF-8 bytes whatever the locale, "\n" only as line ends
    try:
        write = render.renderer(format, model.config.arch)
        for batch in model.predict_file(file, stats):
            render.write_batch(stdout, batch, write)
            stdout.flush()  # each batch reaches the pipe as soon as it is done
    except BrokenPipeError:
        _silence_broken_pipe()
    except KeyboardInterrupt:
        # Whole batches already written stay valid; exit as shell tools do on Ctrl-C.
        err().print("interrupted; the output lines already written are complete", highlight=False)
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
        render.warn(err(), "warning:", said)


# --- evaluate ----------------------------------------------------------------------------


@app.command(cls=_Command)
def evaluate(
    model_dir: ModelDir,
    test_file: Annotated[str, typer.Argument(help="Held-out input<TAB>reference lines; an input on several lines has several references.")],
    json_out: JsonOut = False,
    errors: Annotated[int, typer.Option(min=0, metavar="N", help="List the N worst mistakes (input, reference, prediction).", rich_help_panel=REPORT)] = 0,
    skip_invalid: Annotated[bool, typer.Option(help="Leave out (and report) test rows that are not input<TAB>reference pairs, instead of stopping.", rich_help_panel=REPORT)] = False,
    on_long: OnLongOpt = PredictOptions.on_long,
    encoding_errors: EncodingOpt = PredictOptions.encoding_errors,
    unk: UnkOpt = PredictOptions.unk,
    beam: Beam = PredictOptions.beam,
    engine: EngineOpt = PredictOptions.engine,
    batch_size: BatchSize = PredictOptions.batch_size,
    combine: CombineOpt = PredictOptions.combine,
    verbose: Verbose = False,
):
    """Exact match, word error rate and character error rate on a test file, on stdout
    (label models: accuracy, macro-F1 and a confusion table).

    Redirected to a file, the tables are written whole and the mistakes as tab-separated
    lines. With --json the JSON object is the result (tables go to stderr).

    Examples:

        transducer evaluate models/dates \\
            sample_data/dates.test.tsv --errors 5

        transducer evaluate models/dates \\
            sample_data/dates.test.tsv --json | jq .cer

        transducer evaluate models/langid \\
            sample_data/langid.test.tsv
    """
    _quiet_tensorflow(verbose)
    model = _load(model_dir, engine=engine, beam=beam, unk=unk, on_long=on_long, encoding_errors=encoding_errors,
                  batch_size=batch_size, combine=combine)
    try:
        report = model.evaluate(test_file, skip_invalid=skip_invalid)
    except TransducerError as e:
        _fail(e)
    if report.skipped:
        render.warn(err(), f"skipped {report.skipped} invalid row(s):", report.skipped_detail)
    # The result on stdout: the JSON object with --json (the tables then go to stderr, for people).
    render.evaluate_report(err() if json_out else out(), report, f"{model_dir} on {test_file}", errors)
    if json_out:
        sys.stdout.write(render.json_line(report.to_dict(errors)) + "\n")


# --- explain -----------------------------------------------------------------------------


@app.command(cls=_Command)
def explain(
    model_dir: ModelDir,
    text: Annotated[str, typer.Argument(help="One input string (quote it if it has spaces).")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object on stdout (numbers rounded).")] = False,
    engine: Annotated[str, opt(PredictOptions, "engine")] = PredictOptions.engine,
    top: Annotated[int, typer.Option(min=1, metavar="N", help="Most probable symbols (label models: labels) listed at each step.")] = 3,
    verbose: Verbose = False,
):
    """Show why the model gives its output for TEXT: each step's probabilities and, for
    seq2seq, the attention heat-map (rows: output characters, columns: input characters);
    for a label model, the most probable labels; for an edit model, the edit script under
    the input (each action, its probability, the output so far).

    Examples:

        transducer explain models/dates "March 3, 2021"

        transducer explain models/dates "March 3, 2021" \\
            --json | jq .output
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
    out().print("\n".join(render.explanation_lines(ex)), markup=False, highlight=False, soft_wrap=True)


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
        paths = api.export(model_dir)
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
    """Copy model directories into one ensemble (members of any
    architectures); print its path. Members of different
    architectures are combined by vote or rescore (see predict).

    Example:

        transducer assemble models/a models/b -m models/ab
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
    input_size: Annotated[int, typer.Option(help="One-hot input width.", rich_help_panel=NO_DIR)] = 15,
    output_size: Annotated[Optional[int], typer.Option(help="Output vocabulary size (default: --input-size).", rich_help_panel=NO_DIR)] = None,
    arch: Annotated[str, opt(TrainOptions, "arch", panel=NO_DIR)] = TrainOptions.arch,
    head: Annotated[str, opt(TrainOptions, "head", panel=NO_DIR)] = TrainOptions.head,
    hidden: Annotated[int, opt(TrainOptions, "hidden", panel=NO_DIR)] = TrainOptions.hidden,
    layers: Annotated[int, opt(TrainOptions, "layers", panel=NO_DIR)] = TrainOptions.layers,
    bidirectional: Annotated[bool, opt(TrainOptions, "bidirectional", panel=NO_DIR)] = TrainOptions.bidirectional,
    reset_after: Annotated[bool, opt(TrainOptions, "reset_after", panel=NO_DIR)] = TrainOptions.reset_after,
    attention: Annotated[str, opt(TrainOptions, "attention", panel=NO_DIR)] = TrainOptions.attention,
    max_len: Annotated[int, opt(TrainOptions, "max_len", panel=NO_DIR)] = TrainOptions.max_len,
    return_sequences: Annotated[bool, typer.Option(help="off: the sequence-to-label model, the same as --arch label.", rich_help_panel=NO_DIR)] = True,
    compare_heads: Annotated[bool, typer.Option(help="Build both heads with the same weights, compare outputs and speed.", rich_help_panel=NO_DIR)] = False,
    json_out: Annotated[bool, typer.Option("--json", help="With MODEL_DIR: print its training curves, final metrics and hyperparameters as one JSON object (no TensorFlow).")] = False,
    verbose: Verbose = False,
):
    """Show the network as a table: layers, output shapes, parameter counts; with a model
    directory, also its config, how it was trained and its curves.

    Without one, the network is the one `train` builds with the same options.

    Examples:

        transducer summarize models/translit

        transducer summarize models/translit --json \\
            | jq .best_epoch

        transducer summarize --input-size 15 --hidden 16 \\
            --head time-distributed --no-reset-after
    """
    if json_out and model_dir is None:
        raise typer.BadParameter("needs a model directory (MODEL_DIR)", param_hint="--json")
    _quiet_tensorflow(verbose)
    from transducer.ui import summary

    try:
        if json_out:
            sys.stdout.write(render.json_line(api.summary(model_dir).to_dict()) + "\n")
        elif model_dir is not None:
            summary.model_dir(out(), model_dir)
        else:
            architecture = dict(arch=_label_arch(arch, return_sequences), max_len=max_len, hidden=hidden, layers=layers,
                                bidirectional=bidirectional, reset_after=reset_after, head=head, attention=attention)
            if compare_heads:
                summary.compare_heads(out(), api.compare_heads(input_size, output_size, **architecture))
            else:
                summary.network(out(), api.network_summary(input_size, output_size, **architecture))
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
    api.start_with_one_blas_thread()  # before anything imports numpy: see core/blas.py
    try:
        with _only_the_command(sys.argv[1:2]):
            app()
    except BrokenPipeError:
        _silence_broken_pipe()
    except KeyboardInterrupt:
        err().print("interrupted")
        sys.exit(130)


@contextlib.contextmanager
def _only_the_command(first: list[str]):
    """`transducer CMD ...` runs CMD alone: register only it while Typer builds the click
    group. Typer reads every command's signature to build the group, ~25 ms of a 0.25 s
    one-line predict. `transducer --help`, `--version`, completion and a mistyped command
    (click's "No such command") see all of them."""
    every = app.registered_commands
    named = [c for c in every if first and (c.name or typer.main.get_command_name(c.callback.__name__)) == first[0]]
    app.registered_commands = named or every
    try:
        yield
    finally:
        app.registered_commands = every


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
