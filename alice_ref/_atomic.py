"""Commit sections: no signal handler runs while an optimiser writes its new state.

A step validates everything and computes what it can first; then it *commits*: it writes the
state (in place, on an engine's path) and advances its counters. An exception raised by a
Python signal handler (KeyboardInterrupt on Ctrl-C, an alarm's handler) may strike between any
two statements; inside a commit it would leave some parameters advanced and others not.
:class:`SignalHold` (and :func:`commit_section`, a hold for one block) holds such exceptions
back: in the main thread it swaps every Python
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

import signal
import threading

__all__ = ["SignalHold", "commit_section"]


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


class SignalHold:
    """Held-back Python signal handlers, for a whole step, with windows let out.

    While held, every Python signal handler is replaced by one that records the signal; the
    recorded signals' original handlers run when the handlers are put back: at the end of the
    batch (after its commit or its undo), or when :meth:`released` lets the closure run with
    the user's handlers (an exception then raised in the closure undoes the batch). Each swap
    finishes even if a signal strikes half-way. In threads other than the main one (where
    CPython runs no handler) it does nothing.
    """

    def __init__(self):
        self.active = threading.current_thread() is threading.main_thread()
        self.originals: list = []
        self.pending: list = []
        self.holding = False
        self._handler = self._note  # one bound method, compared by identity

    def _note(self, signum, frame):
        self.pending.append((signum, frame))

    def _swap(self, items) -> None:
        if items:
            (s, h), rest = items[0], items[1:]
            try:
                if h is not self._handler:
                    self.originals.append((s, h))
                    signal.signal(s, self._handler)
            finally:
                self._swap(rest)

    def hold(self) -> None:
        """Hold the handlers back (no-op when held)."""
        if self.active and not self.holding:
            self.holding = True
            self._swap(list(_python_handlers().items()))

    def let_go(self) -> None:
        """Put the handlers back, then run the original handler of each recorded signal."""
        if not (self.active and self.holding):
            return
        originals, self.originals, self.holding = self.originals, [], False
        try:
            _restore(originals)
        finally:
            handlers = dict(originals)
            pending, self.pending = self.pending, []
            for signum, frame in pending:
                handlers[signum](signum, frame)

    def __enter__(self):
        try:
            self.hold()
        except BaseException:  # a signal while swapping: the swap finished; undo it
            self.let_go()
            raise
        return self

    def __exit__(self, *exc) -> bool:
        self.let_go()
        return False

    def released(self):
        """The user's handlers (and any signal recorded meanwhile) for a ``with`` block."""
        return _Released(self)


class _Released:
    """``with held.released():`` (a class, not a generator: a generator interrupted in its
    ``__exit__`` would run its ``finally`` later, whenever it is collected)."""

    def __init__(self, held):
        self.held = held

    def __enter__(self):
        try:
            self.held.let_go()
        except BaseException:  # a recorded signal's handler raised: hold again, then raise
            self.held.hold()
            raise

    def __exit__(self, *exc) -> bool:
        self.held.hold()  # (an interrupt before this runs is caught by the batch, which holds)
        return False


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
    return SignalHold()
