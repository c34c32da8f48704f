"""How the click scripts of ``bin/`` end on bad input and on Ctrl-C: every library
ValueError surfaces as one line on stderr with exit code 2 (never a traceback), and an
interrupt as the line saying what the command kept, exit status 130.
"""
import functools
import os
import signal
import sys

import click

from gmmdiff.cli.stopping import KEPT


class UserError(click.ClickException):
    """A one-line error for the user; exit code 2 like click's usage errors."""
    exit_code = 2

    def show(self, file=None):
        click.echo(f"Error: {self.format_message()}", err=True)


def during_interrupt(exc):
    """Whether ``exc`` was raised while a KeyboardInterrupt was being handled (in its
    ``__context__`` chain): Ctrl-C can land inside library code whose cleanup then fails
    on its half-built state -- NumPy's savez leaving zipfile's ZipFile without
    ``_writing`` gave "AttributeError: 'ZipFile' object has no attribute '_writing'"
    instead of the interrupt's message."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__context__
    return False


def handle_errors(func):
    """Turn library ValueErrors (bad input, foreign or corrupt run directories) into
    :class:`UserError`, and an interrupt (Ctrl-C) into a short message: what the command
    kept, where it says (``ctx.meta[gmmdiff.cli.stopping.KEPT]``, a function returning the
    phrase of :func:`gmmdiff.cli.stopping.run_kept` or :func:`~gmmdiff.cli.stopping.
    sweep_kept`), exit status 130; a worker of ``--jobs`` exits quietly (its parent says
    it)."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            try:
                return func(*args, **kwargs)
            except Exception as exc:
                if during_interrupt(exc):   # a library's cleanup failed on the interrupt
                    raise KeyboardInterrupt from exc
                raise
        except BrokenPipeError:             # the reader went away (`| head`): stop quietly
            sys.stdout = open(os.devnull, "w")
            sys.exit(0)
        except (ValueError, OSError, FloatingPointError) as exc:
            raise UserError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
        except KeyboardInterrupt:
            before = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C: no traceback
            ctx = click.get_current_context(silent=True)
            kept = ctx.meta.get(KEPT) if ctx is not None else None
            if os.environ.get("GMMDIFF_WORKER") is None:
                click.echo("interrupted" + (f"; {kept()}; re-run the same command to continue"
                                            if kept is not None else ""), err=True)
            signal.signal(signal.SIGINT, before)
            sys.exit(130)
    return wrapper
