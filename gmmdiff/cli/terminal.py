"""A progress bar on a terminal: one line redrawn in place (``\\r``), never wrapped,
with the lines other code prints kept above it (:class:`TerminalBar`).

What :mod:`gmmdiff.cli.progress` draws where stderr is a terminal -- a sweep's units
(``gmmdiff-sweep``, also the parent of ``--jobs`` workers) and a fit's folds
(``gmmdiff-predict --fit``); ``gmmdiff-train``'s steps use click's bar. Where stderr is
not a terminal nothing here runs: the commands print lines at a steady interval.
"""
import io
import os
import sys
import threading
import time


class TerminalBar:
    """One line on a terminal, redrawn in place: ``label  [####----]  p%  elapsed e, ETA
    t  text`` (``text``: what is running -- the unit and its step, the source). Drawn
    at most every ``min_interval`` seconds (the last state always, with ``force``), cut
    to the terminal's width so that it never wraps; :meth:`around` wraps a function
    that prints lines so that they appear above the bar instead of through it. Thread
    safe: the parent of ``--jobs`` workers draws from a watching thread and relays its
    workers' lines from others."""

    BAR_WIDTH = 30

    def __init__(self, label, stream=None, *, columns=None, min_interval=0.2, clock=time.monotonic):
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.columns, self.min_interval, self.clock = columns, float(min_interval), clock
        self.shown = ""                 # the line on screen now ('' when cleared)
        self.last = None                # (time, line) of the last draw
        self.lock = threading.RLock()

    def width(self):
        """The terminal's columns (``$COLUMNS``, the stream's terminal, else 80)."""
        if self.columns:
            return int(self.columns)
        try:
            cols = int(os.environ.get("COLUMNS", "0"))
        except ValueError:
            cols = 0
        if cols <= 0:
            try:
                cols = os.get_terminal_size(self.stream.fileno()).columns
            except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
                cols = 0
        return cols if cols > 0 else 80

    def render(self, fraction, elapsed, eta, text=""):
        """The bar's line for ``fraction`` (0..1) done; ``elapsed`` and ``eta`` as
        texts ('1:02', '?', '3:10 (estimate)')."""
        fraction = min(1.0, max(0.0, float(fraction)))
        filled = int(round(fraction * self.BAR_WIDTH))
        line = (f"{self.label}  [{'#' * filled}{'-' * (self.BAR_WIDTH - filled)}]  "
                f"{100 * fraction:3.0f}%  elapsed {elapsed}, ETA {eta}"
                + (f"  {text}" if text else ""))
        return line[:max(10, self.width() - 1)]

    def draw(self, fraction, elapsed, eta, text="", force=False):
        """Redraw (throttled, unless ``force``)."""
        with self.lock:
            now = self.clock()
            if not force and self.last is not None and now - self.last[0] < self.min_interval:
                return
            line = self.render(fraction, elapsed, eta, text)
            self.last = (now, line)
            self._write(line)

    def _write(self, line):
        pad = " " * max(0, len(self.shown) - len(line))    # what a longer line left
        self.stream.write("\r" + line + pad)
        self.stream.flush()
        self.shown = line

    def clear(self):
        """Erase the bar's line (the cursor back at its start)."""
        with self.lock:
            if self.shown:
                self.stream.write("\r" + " " * len(self.shown) + "\r")
                self.stream.flush()
                self.shown = ""

    def around(self, echo):
        """``echo`` (a function printing one line) that clears the bar first and redraws
        it after."""
        def wrapped(*args, **kwargs):
            with self.lock:
                self.clear()
                echo(*args, **kwargs)
                if self.last is not None:
                    self._write(self.last[1])
        return wrapped

    def close(self):
        """Leave the last state on its line and move below it."""
        with self.lock:
            if self.shown:
                self.stream.write("\n")
                self.stream.flush()
                self.shown = ""
            self.last = None            # lines printed from now on: no bar to redraw
