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

__all__ = ["Progress", "json_safe", "new_figure", "write_csv", "write_json"]


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

