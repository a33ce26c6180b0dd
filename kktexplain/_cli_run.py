"""How a command-line verb ends: one line on stderr instead of a traceback, an exit status,
and SIGTERM taken as Ctrl-C while it runs."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading

from ._cli_options import cli_message

__all__ = ["guarded"]


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """Within the block, SIGTERM raises ``KeyboardInterrupt`` as Ctrl-C does.

    A timeout, ``docker stop`` or a batch scheduler then stops a run as Ctrl-C would (a
    synthesis saves the state it reached). Nothing changes outside the main thread, on a
    platform without SIGTERM, or where SIGTERM is ignored.

    Yields
    ------
    list of int
        Receives the signal's number when it arrives. The previous handler is restored after.
    """
    received: list[int] = []

    def interrupt(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    term = getattr(signal, "SIGTERM", None)
    installed = (
        term is not None
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(term) is not signal.SIG_IGN
    )
    previous = signal.signal(term, interrupt) if installed else None
    try:
        yield received
    finally:
        if installed:  # None: a handler set outside Python, which Python cannot put back
            signal.signal(term, signal.SIG_DFL if previous is None else previous)


def guarded(verb: str, fn):
    """``fn`` that ends in one line on stderr, without a traceback, and an exit status.

    Parameters
    ----------
    verb : str
        Named in the messages.
    fn : callable
        ``fn(args) -> exit status``: the verb. One that saves a partial result after an
        interrupt returns 130 itself.

    Returns
    -------
    callable
        ``run(args) -> exit status``: 2 after an input or usage error (``ValueError``,
        ``TypeError``, ``FileNotFoundError``), 1 after a NaN or inf (``FloatingPointError``, e.g.
        :class:`NonFiniteError`), 130 after Ctrl-C and 143 after SIGTERM, which stops the run
        as Ctrl-C does.
    """

    def run(args: argparse.Namespace) -> int:
        with _sigterm_as_interrupt() as received:
            try:
                status = fn(args)
            except (ValueError, TypeError, FileNotFoundError) as e:
                print(f"kktexplain {verb}: {cli_message(e)}", file=sys.stderr)
                return 2
            except FloatingPointError as e:
                print(f"kktexplain {verb}: {cli_message(e)}", file=sys.stderr)
                return 1
            except KeyboardInterrupt:
                print(
                    f"kktexplain {verb}: interrupted before it finished; no result was written",
                    file=sys.stderr,
                )
                status = 130
        return 128 + received[0] if status == 130 and received else status

    return run
