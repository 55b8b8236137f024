"""A user's code runs contained: their factory, their module's import and forward, their detection parameters.

Whatever leaves it - an exception, ``exit()`` (SystemExit), ``os._exit``, a KeyboardInterrupt raised by the code
itself - becomes one UserCodeError (exit 4) naming their callable, so a run never ends with exit 0 having checked
nothing, and never leaves without its clean-up. A real Ctrl-C (a SIGINT delivered to this process) still ends the
run with 130: the signal handler records that it fired, so the two KeyboardInterrupts are told apart.

``os._exit`` cannot be caught, so it is replaced while edgedeploy runs (``guard_process``, the CLI) or while a
contained call runs (the Python API): in this process it raises instead; a forked child (multiprocessing) still
exits with it. Code that kills its own process by a signal is out of reach of any in-process guard.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

from edgedeploy.core.errors import EdgeDeployError, Terminated, UserCodeError

__all__ = ["contained", "guard_process", "interrupted_by_signal", "describe_exit", "last_contained",
           "real_exit", "UserExit"]

_REAL_EXIT = os._exit
_state: dict[str, Any] = {"sigint": False, "guarded_pid": 0, "last": ""}


class UserExit(BaseException):
    """``os._exit(code)`` called in edgedeploy's own process while it is guarded."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def _guarded_exit(code: int) -> NoReturn:
    if os.getpid() != _state["guarded_pid"]:  # a forked child ends as it asked
        _REAL_EXIT(code)
    raise UserExit(code)


def _on_sigint(signum: int, frame: Any) -> None:
    _state["sigint"] = True
    signal.default_int_handler(signum, frame)


def guard_process() -> None:
    """For the whole run (the CLI calls it once): os._exit raises UserExit in this process, and a Ctrl-C is
    recorded as a real interrupt."""
    _state["guarded_pid"] = os.getpid()
    os._exit = _guarded_exit
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        # A process started with SIGINT ignored (a background job) keeps ignoring it.
        signal.signal(signal.SIGINT, _on_sigint)


def interrupted_by_signal() -> bool:
    """Whether a KeyboardInterrupt may have come from a real SIGINT: one reached this process, or SIGINT is not
    tracked here (no guard, or a library replaced the handler), when a Ctrl-C cannot be ruled out. With SIGINT
    ignored (a process started from a background job) none can have raised it: the code did."""
    handler = signal.getsignal(signal.SIGINT)
    return bool(_state["sigint"]) or (handler is not _on_sigint and handler is not signal.SIG_IGN)


def real_exit(code: int) -> NoReturn:
    """The interpreter's own os._exit, for edgedeploy's own fast exit."""
    _REAL_EXIT(code)


def describe_exit(exc: BaseException) -> str | None:
    """What a BaseException that is not an error says the code did ("called exit(3)"), or None for a real
    interrupt or termination, which must end the run as such."""
    if isinstance(exc, Terminated) or (isinstance(exc, KeyboardInterrupt) and interrupted_by_signal()):
        return None
    if isinstance(exc, UserExit):
        return f"called os._exit({exc.code})"
    if isinstance(exc, SystemExit):
        return f"called exit({exc.code!r})"
    if isinstance(exc, KeyboardInterrupt):
        return "raised KeyboardInterrupt (no Ctrl-C was pressed)"
    return f"raised {type(exc).__name__}: {_first_line(exc)}"


def last_contained() -> str | None:
    """The user's callable whose code ran last in a contained block (what a SystemExit met later, e.g. in a
    converter's trace of their forward, is attributed to)."""
    return _state["last"] or None


@contextmanager
def contained(owner: str, step: str) -> Iterator[None]:
    """Run a block of the user's code (``owner`` names their callable, "mypkg.nets:make"; ``step`` what runs:
    "the factory"); anything it raises or exits with, except edgedeploy's own errors and a real interrupt, becomes
    UserCodeError (exit 4)."""
    _state["last"] = owner
    guarded_here = os._exit is not _guarded_exit
    if guarded_here:
        _state["guarded_pid"] = os.getpid()
        os._exit = _guarded_exit
    try:
        yield
    except EdgeDeployError:
        raise
    except BaseException as exc:
        said = describe_exit(exc)
        if said is None:
            raise
        raise UserCodeError(f"{owner}: {step} {said}") from exc
    finally:
        if guarded_here:
            os._exit = _REAL_EXIT


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
