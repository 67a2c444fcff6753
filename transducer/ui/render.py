"""How the command line shows results: predict's lines (text, tsv, jsonl), JSON objects
with rounded numbers, evaluate's report, summarize's tables, explain's steps.

Output that survives: an `Output` console writing to a file or a pipe has no width limit,
so a table redirected to a file is written whole (nothing cut, no path wrapped) and a
report's mistakes are plain tab-separated lines; in a terminal, tables fit its width and
long values are folded onto further lines, never cut.
"""

from __future__ import annotations

import functools
import json
import unicodedata

# rich is imported by the functions that draw with it (and the first console made), not
# here: predict writes its lines without it, and saves the import (about 30 ms).

UNLIMITED = 100_000  # columns of an Output that is not a terminal: no table is ever cut

# --- consoles ------------------------------------------------------------------------------


def Output(**kwargs) -> Console:  # noqa: N802 (it makes consoles as a class would)
    """A rich Console whose width is the terminal's when it writes to one, and unlimited
    otherwise (a file, a pipe, CliRunner), whatever COLUMNS says; kwargs: Console's."""
    return _output_class()(**kwargs)


@functools.cache
def shared_console(stderr: bool = False) -> Console:
    """The process's console on stdout (a command's result) or stderr (progress, warnings,
    errors), made on first use. It writes to whatever sys.stdout / sys.stderr is then."""
    return Output(stderr=stderr)


@functools.cache
def _output_class():
    from rich.console import Console, ConsoleDimensions

    class _Output(Console):
        def _size(self) -> ConsoleDimensions:
            size = Console.size.fget(self)
            return size if self.is_terminal else ConsoleDimensions(UNLIMITED, size.height)

        size = property(_size, Console.size.fset)

    return _Output


def print_lines(console: Console, text: str, style: str | None = None) -> None:
    """Plain text (no markup): word-wrapped in a terminal, so no number or word is broken
    in two; one line per line elsewhere."""
    console.print(text, style=style, markup=False, highlight=False, soft_wrap=not console.is_terminal)


def warn(console: Console, label: str, text: str) -> None:
    """`label` (e.g. "warning:") in yellow, then plain `text`."""
    from rich.markup import escape

    console.print(f"[yellow]{escape(label)}[/] {escape(text)}", highlight=False, soft_wrap=not console.is_terminal)


def error(console: Console, text: str) -> None:
    """The one-line error every command ends with on a problem the user can fix."""
    from rich.markup import escape

    console.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)


def show(console: Console, title: str, table: Table) -> None:
    """A table under its title; the title is a line of its own, so a long path in it is
    never wrapped to the table's width."""
    console.print(title, style="italic", markup=False, highlight=False, soft_wrap=True)
    console.print(table)


# --- numbers -------------------------------------------------------------------------------


def num(x):
    """A float as JSON shows it: 6 significant digits, no float noise (0.02, not
    0.020000000000000018); ints and None as they are."""
    return float(f"{x:.6g}") if isinstance(x, float) else x


def rounded(obj):
    """`obj` with every float as `num` shows it, through dicts and lists; NaN and
    infinities become None (JSON has no such numbers)."""
    if isinstance(obj, dict):
        return {k: rounded(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [rounded(v) for v in obj]
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None
    return num(obj)


def json_line(obj) -> str:
    """One JSON object on one line, numbers rounded: every JSON stream's form."""
    return json_safe(json.dumps(rounded(obj), ensure_ascii=False, default=str))


def duration(seconds: float) -> str:
    """12.3s, 4m05s, 1h02m03s."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(round(seconds)), 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s"


# Keras's metric names, in the order a line shows them; others follow in their own order.
EPOCH_ORDER = (
    "loss", "char_acc", "exact_match", "accuracy",  # accuracy: a label model's (--arch label)
    "val_loss", "val_char_acc", "val_exact_match", "val_accuracy", "learning_rate",
)


def ordered(logs: dict) -> list[tuple[str, float]]:
    """(name, value) pairs of an epoch's logs, in EPOCH_ORDER first."""
    known = [(k, logs[k]) for k in EPOCH_ORDER if k in logs]
    return known + [(k, v) for k, v in logs.items() if k not in EPOCH_ORDER]


def fmt_value(name: str, value: float) -> str:
    return f"{value:.3g}" if name == "learning_rate" else f"{value:.4f}"


# --- predict -------------------------------------------------------------------------------
# A renderer turns a Prediction into parts: strings, or (for a huge line, see
# predict.SpooledLine) iterables of string pieces that are streamed, never joined.


def pieces(x):
    return x if isinstance(x, str) else x.pieces()


def text(p) -> list:
    if p.nbest:  # candidates, best first, tab-separated
        return ["\t".join(c for c, _, _ in p.nbest), "\n"]
    return [pieces(p.output), "\n"]


def tsv(p) -> list:
    if p.nbest:  # input, then candidate<TAB>score for each candidate
        return [pieces(p.input), *(f"\t{c}\t{score:.6g}" for c, score, _ in p.nbest), "\n"]
    return [pieces(p.input), "\t", pieces(p.output), "\n"]


def tsv_label(p) -> list:
    """A label model's tsv: input<TAB>label<TAB>probability (n-best: as tsv)."""
    if p.nbest:
        return tsv(p)
    conf = "" if p.confidence is None else f"{p.confidence:.6g}"  # empty or copied lines
    return [pieces(p.input), "\t", pieces(p.output), "\t", conf, "\n"]


def jsonl(p) -> list:
    nbest = [{"output": c, "score": num(sc), "probability": num(pr)} for c, sc, pr in p.nbest] if p.nbest else None
    if isinstance(p.input, str) and isinstance(p.output, str):
        row = {"input": p.input, "output": p.output, "confidence": num(p.confidence)}
        if nbest:
            row["nbest"] = nbest
        return [json_safe(json.dumps(row, ensure_ascii=False)), "\n"]
    conf = json.dumps(num(p.confidence))
    extra = f', "nbest": {json_safe(json.dumps(nbest, ensure_ascii=False))}' if nbest else ""
    return ['{"input": "', json_pieces(p.input), '", "output": "', json_pieces(p.output), f'", "confidence": {conf}{extra}}}\n']


def json_pieces(x):
    """A string's JSON-escaped content, piece by piece (escaping is per character)."""
    return (json_safe(json.dumps(piece, ensure_ascii=False)[1:-1]) for piece in pieces(x))


def json_safe(s: str) -> str:
    """Escape the characters JSON allows raw but many line readers (Python's splitlines,
    JavaScript) take as line breaks, so a JSONL row is one line for every reader."""
    return s.replace("\x85", "\\u0085").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


RENDERERS = {"text": text, "tsv": tsv, "jsonl": jsonl}  # predict --format -> renderer


def renderer(fmt: str, arch: str):
    """The renderer of predict's `--format` for a model of `arch`."""
    return tsv_label if fmt == "tsv" and arch == "label" else RENDERERS[fmt]


def write_batch(out, batch, render) -> None:
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


def predict_warnings(stats, on_long: str, copied: bool, arch: str = "") -> list[str]:
    """What predict says on stderr after its lines: unseen characters, long lines."""
    said = []
    if stats.unknown_chars:
        shown = ", ".join(f"{c!r} x{n}" for c, n in stats.most_unknown())
        more = "" if len(stats.unknown_counts) <= 5 else ", ..."
        done = "copied through unchanged" if copied else "read as <unk>"
        if arch == "edit":
            done += "; COPY writes them as they are"
        said.append(
            f"{stats.unknown_chars} character(s) on {stats.unknown_lines} line(s) were not in the training data"
            f" ({done}): {shown}{more}; first on line {stats.first_unknown_line}"
        )
    if stats.long_lines and on_long != "error":
        done = "truncated" if on_long == "truncate" else "copied unchanged"
        said.append(f"{stats.long_lines} line(s) longer than max_len were {done} (first: line {stats.first_long_line})")
    return said


# --- evaluate ------------------------------------------------------------------------------


def metric_table(rows: list[tuple[str, str]]) -> Table:
    from rich.table import Table

    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, value)
    return table


def evaluate_report(console: Console, report, title: str, errors: int) -> None:
    """evaluate's tables: metrics (label models: and the confusion table), then the worst
    `errors` mistakes."""
    counted = ("lines (distinct inputs)", f"{report.n} ({report.n_inputs})")
    if hasattr(report, "confusion"):  # a label model
        show(console, title, metric_table([counted, ("accuracy", f"{report.accuracy:.4f}"), ("macro-F1", f"{report.macro_f1:.4f}")]))
        show(console, "confusion (rows: reference, columns: predicted)", confusion_table(report))
        columns, heading = ("input", "reference", "prediction"), "first {} mistakes"
    else:
        show(console, title, metric_table([
            counted, ("exact match", f"{report.exact_match:.4f}"), ("word error rate", f"{report.wer:.4f}"),
            ("character error rate", f"{report.cer:.4f}"),
        ]))
        columns, heading = ("input", "reference", "prediction", "edits"), "worst {} mistakes"
    worst = report.mistakes[:errors]
    if worst:
        rows = [(m.input, m.reference, m.prediction, str(m.distance))[: len(columns)] for m in worst]
        mistakes(console, heading.format(len(worst)), columns, rows)


def mistakes(console: Console, title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """In a terminal, a table whose long values fold onto further lines; elsewhere plain
    tab-separated lines under a header, each value whole (cut -f and grep work on them)."""
    if not console.is_terminal:
        lines = [f"{title} ({', '.join(columns)}; tab-separated):", *("\t".join(r) for r in rows)]
        console.file.write("\n".join(lines) + "\n")  # as they are: rich would expand the tabs
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table()
    for col in columns:
        table.add_column(col, justify="right" if col == "edits" else "left", overflow="fold")
    for r in rows:
        table.add_row(*(escape(v) for v in r))
    show(console, title, table)


def confusion_table(report) -> Table:
    """Rows: reference labels, columns: predicted; the diagonal in bold."""
    from rich.markup import escape
    from rich.table import Table

    table = Table()
    table.add_column("reference", style="bold")
    for label in report.labels:
        table.add_column(escape(label), justify="right")
    table.add_column("recall", justify="right")
    table.add_column("F1", justify="right")
    for i, (label, row) in enumerate(zip(report.labels, report.confusion)):
        stats = report.per_label[label]
        cells = [f"[bold]{n}[/]" if j == i else (str(n) if n else "·") for j, n in enumerate(row)]
        table.add_row(escape(label), *cells, f"{stats['recall']:.3f}", f"{stats['f1']:.3f}")
    return table


# --- explain -------------------------------------------------------------------------------


def cell(ch: str) -> str:
    """A character as one terminal cell: control, combining and wide characters as ·."""
    if ch == " ":
        return "␣"
    if not ch.isprintable() or unicodedata.combining(ch) or unicodedata.east_asian_width(ch) in "WF":
        return "·"
    return ch


def explanation_lines(ex) -> list[str]:
    """explain's picture of an Explanation: per-step probabilities, the attention heat-map
    of a seq2seq model, the label distribution of a label model, the edit script of an
    edit model."""
    lines = [f"input:  {ex.text!r}", f"output: {ex.output!r}  (probability {ex.probability:.4g}, {ex.arch} model, {ex.engine} engine)"]
    if ex.unknown:
        done = "read as <unk>" + {"aligned": "; copied through unchanged", "edit": "; COPY writes it as it is"}.get(ex.arch, "")
        from transducer.inference.explain import shown_char

        lines.append(f"note: {', '.join(shown_char(c) for c in ex.unknown)} not in the training data: {done}")
    lines.append("")
    if ex.arch == "label":
        return lines + label_lines(ex.steps[0].top)
    if ex.arch == "edit":
        return lines + edit_lines(ex)
    tops = ["  ".join(f"{c.symbol} {c.probability:.3f}" for c in s.top) for s in ex.steps]
    label_w = max([5, *(len(s.symbol) for s in ex.steps)])
    if ex.arch == "aligned":
        lines.append(f"{'pos':>3}  {'in':<{label_w}}  {'out':<{label_w}}  {'p':<6}  most probable")
        for t, (s, alts) in enumerate(zip(ex.steps, tops)):
            seen = ex.input_symbols[t] if t < len(ex.input_symbols) else "<pad>"
            lines.append(f"{t + 1:>3}  {seen:<{label_w}}  {s.symbol:<{label_w}}  {s.probability:.4f}  {alts}")
        return lines
    return lines + attention_lines(ex, tops, label_w)


def attention_lines(ex, tops: list[str], label_w: int) -> list[str]:
    """A seq2seq explanation's rows: output symbol, probability, attention cells, top symbols."""
    from transducer.ui.charts import SHADE_LEGEND, shade

    n = len(ex.text)
    if not ex.has_attention:
        lines = ["(this model has no attention: --attention none)", f"{'out':<{label_w}}  {'p':<6}  most probable"]
    else:
        header = "".join(f"{cell(c)} " for c in ex.text)
        lines = [
            f"attention: a row per output step, a column per input character, pad = the padding after it ({SHADE_LEGEND})",
            f"{'out':<{label_w}}  {'p':<6}  {header}│pad│  most probable",
        ]
    for s, alts in zip(ex.steps, tops):
        row = f"{s.symbol:<{label_w}}  {s.probability:.4f}  "
        if s.attention is not None:
            cells = "".join(shade(w) * 2 for w in s.attention[:n])
            row += f"{cells}│{shade(sum(s.attention[n:])) * 3}│  "
        lines.append(row + alts)
    return lines


def edit_lines(ex) -> list[str]:
    """An edit model's script under its input: a row per action with the input position
    under the pointer (1-based; "end": past the input) and its character, the action,
    its probability, the output so far, and the most probable actions there."""
    action_w = max([6, *(width(s.symbol) for s in ex.steps)])
    out_w = max([len("output so far"), *(width(repr(s.written)) for s in ex.steps)])
    lines = [
        "edit script: a row per action; pos = the input character under the pointer before it",
        f"{'step':>4}  {'pos':>3}  in  {'action':<{action_w}}  {'p':<6}  {'output so far':<{out_w}}  most probable",
    ]
    for t, s in enumerate(ex.steps, 1):
        past = s.pointer >= len(ex.text)
        pos, under = ("end", "  ") if past else (str(s.pointer + 1), cell(ex.text[s.pointer]) + " ")
        alts = "  ".join(f"{c.symbol} {c.probability:.3f}" for c in s.top)
        lines.append(f"{t:>4}  {pos:>3}  {under}  {pad(s.symbol, action_w)}  {s.probability:.4f}  {pad(repr(s.written), out_w)}  {alts}")
    return lines


def width(text: str) -> int:
    """Terminal cells of `text`: combining marks take none, wide characters two."""
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def pad(text: str, cells: int) -> str:
    """`text` and spaces up to `cells` terminal cells."""
    return text + " " * max(0, cells - width(text))


BAR_WIDTH = 30  # characters of a probability 1 bar in the label distribution


def label_lines(top) -> list[str]:
    """The most probable labels, one per line: label, probability, a bar."""
    w = max(len("label"), *(len(c.symbol) for c in top))
    lines = [f"{'label':<{w}}  {'p':<6}  (the {len(top)} most probable labels)"]
    for c in top:
        lines.append(f"{c.symbol:<{w}}  {c.probability:.4f}  {'█' * round(c.probability * BAR_WIDTH)}")
    return lines
