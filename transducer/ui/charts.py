"""Small pictures in plain text for the terminal: sparklines, per-epoch line plots and
heat-map shades. Pure functions returning strings (no rich, no numpy), so the output
is the same in a terminal, a file or a test."""

from __future__ import annotations

import math

BARS = "▁▂▃▄▅▆▇█"
SHADE_STEPS = ((0.75, "█"), (0.5, "▓"), (0.25, "▒"), (0.05, "░"))  # heat-map cell per weight floor
SHADE_LEGEND = "█ ≥ 0.75, ▓ ≥ 0.5, ▒ ≥ 0.25, ░ ≥ 0.05, blank below"
MAX_COLUMNS = 60  # a plot wider than this many epochs samples them


def _finite(values) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def sampled(n: int) -> list[int]:
    """Indices of the epochs a plot shows: all of them, or MAX_COLUMNS evenly spaced."""
    return list(range(n)) if n <= MAX_COLUMNS else [round(c * (n - 1) / (MAX_COLUMNS - 1)) for c in range(MAX_COLUMNS)]


def sparkline(values: list[float]) -> str:
    """One bar character per value (or per sampled value), scaled between min and max."""
    values = [values[i] for i in sampled(len(values))]
    ok = _finite(values)
    if not ok:
        return ""
    lo, hi = min(ok), max(ok)
    span = hi - lo
    out = []
    for v in values:
        if v is None or not math.isfinite(v):
            out.append(" ")
        else:
            out.append(BARS[round((v - lo) / span * (len(BARS) - 1)) if span else len(BARS) // 2])
    return "".join(out)


def shade(weight: float) -> str:
    """One heat-map cell for a weight in [0, 1] (see SHADE_LEGEND)."""
    for floor, cell in SHADE_STEPS:
        if weight >= floor:
            return cell
    return " "


def epoch_plot(
    series: dict[str, list[float]], marks: dict[str, str], best_epoch: int = 0, height: int = 8, overlap: str = "◉"
) -> list[str]:
    """Lines of a plot of per-epoch values: y axis labelled with the range, one column
    group per epoch, each series drawn with its mark (`overlap` where two meet), and the
    best epoch marked under the x axis."""
    n = max((len(v) for v in series.values()), default=0)
    values = [v for vals in series.values() for v in _finite(vals)]
    if not n or not values:
        return []
    epochs = sampled(n)
    cw = max(1, min(4, MAX_COLUMNS // len(epochs)))  # characters per epoch column
    lo, hi = min(values), max(values)
    grid = [[" "] * (len(epochs) * cw) for _ in range(height)]
    for name, vals in series.items():
        for c, e in enumerate(epochs):
            if e < len(vals) and vals[e] is not None and math.isfinite(vals[e]):
                frac = (vals[e] - lo) / (hi - lo) if hi > lo else 0.5
                row = height - 1 - round(frac * (height - 1))
                cell = grid[row][c * cw + cw // 2]
                grid[row][c * cw + cw // 2] = marks[name] if cell in (" ", marks[name]) else overlap
    top, bottom = f"{hi:.4g}", f"{lo:.4g}"
    w = max(len(top), len(bottom))
    lines = []
    labelled = {0: top, height - 1: bottom} if hi > lo else {height - 1 - round(0.5 * (height - 1)): top}
    for r, cells in enumerate(grid):
        label = labelled.get(r, "")
        lines.append(f"{label:>{w}} {'┤' if label else '│'}{''.join(cells).rstrip()}")
    lines.append(" " * w + " └" + "─" * (len(epochs) * cw))
    lines.append(" " * (w + 2) + _epoch_labels(epochs, cw))
    if best_epoch:
        col = min(range(len(epochs)), key=lambda c: abs(epochs[c] - (best_epoch - 1)))
        lines.append(" " * (w + 2 + col * cw + cw // 2) + f"▲ best epoch ({best_epoch})")
    return lines


def _epoch_labels(epochs: list[int], cw: int) -> str:
    """Epoch numbers under the x axis: the first, the last, and evenly spaced ones that fit."""
    row = [" "] * (len(epochs) * cw + 8)
    last = len(epochs) - 1
    for c in [0, last, *range(0, last, max(1, 8 // cw))]:  # the ends first: they always fit
        text = str(epochs[c] + 1)
        at = c * cw + cw // 2
        if all(ch == " " for ch in row[max(0, at - 1) : at + len(text) + 1]):
            row[at : at + len(text)] = text
    return "".join(row).rstrip()
