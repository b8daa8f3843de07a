"""Ctrl-C while the host engine runs.

The host engine's C code calls back into Python (the next sample, progress)
through cffi, and an exception raised in such a callback cannot leave it:
cffi prints it and carries on. A Ctrl-C, whose KeyboardInterrupt is raised
wherever Python happens to be, would then be lost whenever it arrives during
an epoch, which is nearly always. So within `ctrl_c_deferred_in_engine()` a
Ctrl-C that arrives inside the engine (any frame of `medyate.engine.host` on
the stack) is noted instead of raised; the caller looks at `pending` when
the engine has returned (the session: at the end of the epoch). A second
Ctrl-C there stops the process at once. Anywhere else (a device session's
serial link, Python code) Ctrl-C raises KeyboardInterrupt as usual."""
from __future__ import annotations

import contextlib
import os
import signal

ENGINE_MODULE = "medyate.engine.host"


class CtrlC:
    pending = False


def _in_engine(frame) -> bool:
    while frame is not None:
        if frame.f_globals.get("__name__") == ENGINE_MODULE:
            return True
        frame = frame.f_back
    return False


@contextlib.contextmanager
def ctrl_c_deferred_in_engine(say=None):
    """Yield a `CtrlC` whose `pending` is set by a Ctrl-C noted inside the
    engine; `say()` is called when one is. Without effect where Python's own
    Ctrl-C handling is not in place (another handler, or not the main thread)."""
    state = CtrlC()
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield state
        return

    def handler(signum, frame):
        if not _in_engine(frame):
            raise KeyboardInterrupt
        if state.pending:
            # asked twice: stop now, as Ctrl-C without this handler would
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
            return
        state.pending = True
        if say is not None:
            say()

    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:          # not the main thread: leave Ctrl-C alone
        yield state
        return
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
