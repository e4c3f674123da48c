"""Commit sections: no signal handler runs while an optimiser writes its new state.

A step validates everything and computes what it can first; then it *commits*: it writes the
state (in place, on an engine's path) and advances its counters. An exception raised by a
Python signal handler (KeyboardInterrupt on Ctrl-C, an alarm's handler) may strike between any
two statements; inside a commit it would leave some parameters advanced and others not.
:func:`commit_section` holds such exceptions back: in the main thread it swaps every Python
signal handler for one that only records the signal, and when the block has finished it puts
the handlers back and runs the original handler of each recorded signal, in order, so the
exception propagates from the end of a completed step.

(Blocking the signals with ``pthread_sigmask`` would not do: a process-directed signal is then
delivered to another thread, one of NumPy's or numba's workers, and CPython runs its Python
handler in the main thread all the same.) In other threads, where CPython never runs signal
handlers, it does nothing.

Synchronous errors cannot be held back: a commit must contain nothing that can fail (every
argument is checked before it starts).
"""

from __future__ import annotations

import contextlib
import signal
import threading

__all__ = ["commit_section"]


def _python_handlers() -> dict:
    out = {}
    for s in signal.valid_signals():
        try:
            h = signal.getsignal(s)
        except (ValueError, OSError):  # pragma: no cover - platform specific
            continue
        if callable(h):  # a Python-level handler (default_int_handler for SIGINT included)
            out[s] = h
    return out


def _restore(items) -> None:
    """Put each handler back; a handler that runs meanwhile cannot stop the others' return."""
    if items:
        (s, h), rest = items[0], items[1:]
        try:
            signal.signal(s, h)
        finally:
            _restore(rest)


@contextlib.contextmanager
def commit_section():
    """Hold Python signal handlers back until the block has finished (module docstring).

    Example:
        A handler that would raise runs only after the block:

        >>> import os, signal
        >>> seen = []
        >>> old = signal.signal(signal.SIGUSR1, lambda s, f: seen.append("handler"))
        >>> with commit_section():
        ...     os.kill(os.getpid(), signal.SIGUSR1)
        ...     seen.append("commit")
        >>> signal.signal(signal.SIGUSR1, old) is not None, seen
        (True, ['commit', 'handler'])
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list = []
    record = lambda signum, frame: pending.append((signum, frame))  # noqa: E731
    originals: list = []
    try:
        for s, h in _python_handlers().items():
            originals.append((s, h))  # before the swap: a handler arriving now is the original
            signal.signal(s, record)
        yield
    finally:
        try:
            _restore(originals)
        finally:
            handlers = dict(originals)
            for signum, frame in pending:
                handlers[signum](signum, frame)
