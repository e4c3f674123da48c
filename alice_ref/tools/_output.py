"""Output shared by ``alice-ref probe`` and ``alice-ref train``: progress, JSON, CSV, figures.

One JSON-safe converter (:func:`json_safe`, also behind the diagnostics reports' ``to_dict()``),
one JSON writer, one CSV writer, a progress bar (tqdm when installed) and a matplotlib figure
on the Agg canvas (matplotlib and tqdm imported lazily: extra ``plot``).
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["Progress", "json_safe", "line_styles", "log_axis", "new_figure", "write_csv",
           "write_json"]


class Progress:
    """A progress bar: tqdm when installed, else a plain counter on stderr; silent if disabled.

    Args:
        total: the number of units of work.
        desc: the label shown before the count.
        enabled: False for no output at all (the count is still kept in ``n``).

    Example:
        A silent bar still counts:

        >>> bar = Progress(10, "probe", enabled=False)
        >>> bar.update(); bar.set(4); bar.set(2); bar.close()
        >>> bar.n
        4
    """

    def __init__(self, total: int, desc: str = "", enabled: bool = True):
        self.total, self.desc, self.enabled, self.n = int(total), desc, enabled, 0
        self._bar, self._last, self._last_line = None, 0.0, 0
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            tqdm = None
        if tqdm is not None:
            self._bar = tqdm(total=self.total, desc=desc, leave=False, file=sys.stderr,
                             dynamic_ncols=True)

    def update(self, n: int = 1):
        """Advance by n units.

        Args:
            n: units done since the last call.

        Example:
            Counting without output:

            >>> bar = Progress(5, enabled=False)
            >>> bar.update(2); bar.update()
            >>> bar.n
            3
        """
        self.n += n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if not _is_tty(sys.stderr):  # a log file: one plain line per tenth of the work, no \r
            step = max(1, self.total // 10)
            if self.n // step > self._last_line:
                self._last_line = self.n // step
                print(f"{self.desc}: {self.n}/{self.total}", file=sys.stderr, flush=True)
            return
        if now - self._last > 0.5 or self.n >= self.total:
            self._last = now
            print(f"\r{self.desc}: {self.n}/{self.total}", end="", file=sys.stderr, flush=True)

    def set(self, n: int):
        """Move to absolute position n (never backwards).

        Args:
            n: the number of units done so far.

        Example:
            A smaller position is ignored:

            >>> bar = Progress(5, enabled=False)
            >>> bar.set(3); bar.set(1)
            >>> bar.n
            3
        """
        if n > self.n:
            self.update(n - self.n)

    def close(self):
        """Finish the bar (close tqdm, or end the counter's line on stderr).

        Example:
            Nothing to do for a disabled bar:

            >>> Progress(1, enabled=False).close()
        """
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
        elif _is_tty(sys.stderr):
            print(file=sys.stderr, flush=True)


def _is_tty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def json_safe(x):
    """JSON-safe copy: NumPy scalars to Python, non-finite floats to None, tuples to lists.

    The one converter behind every report's ``to_dict()`` and the commands' JSON files.

    Args:
        x: dicts, lists, tuples, NumPy arrays and scalars, Python numbers, anything else as is.

    Returns:
        The copy (dict keys as strings).

    Example:
        NaN becomes None, NumPy values become Python ones:

        >>> import numpy as np
        >>> json_safe({"a": (np.float64(0.5), float("nan")), 1: np.arange(2), "b": np.bool_(1)})
        {'a': [0.5, None], '1': [0, 1], 'b': True}
    """
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_safe(v) for v in x]
    if isinstance(x, np.ndarray):
        return json_safe(x.tolist())
    if isinstance(x, bool | np.bool_):
        return bool(x)
    if isinstance(x, int | np.integer):
        return int(x)
    if isinstance(x, float | np.floating):
        x = float(x)
        return x if math.isfinite(x) else None
    return x



def write_json(path: str, obj) -> None:
    """Write obj as indented JSON with a final newline; NaN/Inf are refused.

    Args:
        path: the file to write.
        obj: JSON-serialisable data (e.g. a report's ``to_dict()``).

    Raises:
        ValueError: obj holds a NaN or an infinity.

    Example:
        Round trip through a temporary file:

        >>> import json, os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "r.json")
        >>> write_json(path, {"a": [1, 2.5]})
        >>> json.load(open(path))
        {'a': [1, 2.5]}
    """
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, allow_nan=False)
        f.write("\n")



def write_csv(path: str, rows: Sequence[Mapping], columns: Sequence[str]) -> None:
    """Write one CSV row per mapping, the given columns in order (a missing key: empty cell).

    Args:
        path: the file to write.
        rows: the records.
        columns: the header and the keys to write.

    Example:
        Round trip through a temporary file:

        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "r.csv")
        >>> write_csv(path, [{"a": 1, "b": 0.5}, {"a": 2}], ["a", "b"])
        >>> open(path).read().splitlines()
        ['a,b', '1,0.5', '2,']
    """
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for r in rows:
            w.writerow([r.get(c) for c in columns])


def new_figure(w=10.0, h=4.0, ncols=1, nrows=1):
    """A matplotlib Figure on the Agg canvas (no pyplot, no global backend change), or None.

    Args:
        w: width in inches.
        h: height in inches.
        ncols: columns of axes.
        nrows: rows of axes.

    Returns:
        (figure, 2-D array of axes), or (None, None) without matplotlib.

    Example:
        One row of two axes (None without matplotlib):

        >>> fig, axes = new_figure(ncols=2)
        >>> None if axes is None else axes.shape
        (1, 2)
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None, None
    fig = Figure(figsize=(w, h), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _tick_label(v, _pos=None) -> str:
    """A short tick label: 0.002, 0.05, 20 as written; 2e-7, 1e5 beyond three decades of 1."""
    if v <= 0 or not math.isfinite(v):
        return ""
    e = math.floor(math.log10(v) + 1e-9)
    if -3 <= e <= 3:
        return f"{v:.4g}"
    m = v / 10.0**e
    return f"{m:.2g}e{e}"


def log_axis(ax, axis: str = "x", values=None, linear_below: float = 0.45) -> str:
    """Scale one axis for positive data spread over a factor; always at least two tick labels.

    The decades spanned by the finite positive data of the axes' lines decide the scale:
    under ``linear_below`` decades a linear axis (a log axis would show one label or none);
    up to 2 decades log with ticks at 1, 2, 5 times powers of ten, up to 3.5 at 1 and 3 times,
    beyond that at powers of ten (every tick labelled). Labels are short numbers (0.002, 2e-7).
    An axis whose data include a value <= 0 (e.g. a bound that is 0 without glass) stays
    linear.

    Args:
        ax: a matplotlib Axes, after its data are plotted.
        axis: 'x' or 'y'.
        values: the data that decide (arrays; default: the lines drawn in data coordinates,
            error-bar caps included, so pass the values themselves for error bars).
        linear_below: the span, in decades, under which the axis stays linear.

    Returns:
        The scale chosen: 'log' or 'linear'.

    Example:
        Data from 0.002 to 0.08 get a log axis with five labelled ticks in range:

        >>> fig, axes = new_figure()
        >>> if axes is None:
        ...     print("log 5")
        ... else:
        ...     ax = axes[0, 0]
        ...     _ = ax.plot([0.002, 0.01, 0.08], [1.0, 2.0, 3.0])
        ...     scale = log_axis(ax, "x")
        ...     lo, hi = ax.get_xlim()
        ...     print(scale, sum(lo <= t <= hi for t in ax.get_xticks()))
        log 5
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    k = 0 if axis == "x" else 1
    if values is None:  # lines in data coordinates on this axis (not axhline/axvline's 0..1)
        own = ax.get_xaxis_transform() if axis == "x" else ax.get_yaxis_transform()
        values = [ln.get_data()[k] for ln in ax.get_lines()
                  if ln.get_transform() in (ax.transData, own)]
    vals = [np.asarray(x, dtype=float).ravel() for x in values]
    v = np.concatenate(vals) if vals else np.zeros(0)
    v = v[np.isfinite(v)]
    if v.size == 0 or np.any(v <= 0):
        return "linear"
    decades = math.log10(float(v.max()) / float(v.min()))
    if decades < linear_below:
        return "linear"
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    a = ax.xaxis if axis == "x" else ax.yaxis
    subs = (1.0, 2.0, 5.0) if decades <= 2.0 else (1.0, 3.0) if decades <= 3.5 else (1.0,)
    a.set_major_locator(LogLocator(base=10.0, subs=subs, numticks=12))
    a.set_major_formatter(FuncFormatter(_tick_label))
    a.set_minor_locator(LogLocator(base=10.0, subs=np.arange(2.0, 10.0), numticks=12))
    a.set_minor_formatter(NullFormatter())
    return "log"


_DASHES = ["-", "--", "-.", ":", (0, (5, 1.5, 1, 1.5, 1, 1.5)), (0, (8, 2)), (0, (2, 1))]
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">"]


def line_styles(k: int, n_points: int = 0, n_marks: int = 8) -> dict:
    """Plot keywords of the k-th curve of a figure: its own colour, dash pattern and marker.

    Curves that lie on top of each other stay apart: the markers are spaced ``n_marks`` per
    curve and shifted along x by k so that two curves' markers do not coincide.

    Args:
        k: the curve's index (0, 1, ...).
        n_points: the curve's number of points (0: a marker on every point).
        n_marks: markers per curve when n_points is given.

    Returns:
        ``color``, ``linestyle``, ``marker`` and ``markevery`` for ``Axes.plot``.

    Example:
        Two curves differ in every keyword:

        >>> a, b = line_styles(0, 40), line_styles(1, 40)
        >>> [a[key] != b[key] for key in ("color", "linestyle", "marker", "markevery")]
        [True, True, True, True]
    """
    step = max(1, n_points // n_marks) if n_points else 1
    return {"color": f"C{k % 10}", "linestyle": _DASHES[k % len(_DASHES)],
            "marker": _MARKERS[k % len(_MARKERS)],
            "markevery": (((k * step) // 3) % step, step)}
