"""The command line's entry point: the command group, logging, and one mapping from errors to
exit codes (a one-line message, or a JSON error object with --json; --debug adds the traceback).

Commands live one per module in ``edgedeploy.cli.commands``; this module imports none of the
library, so ``edgedeploy --help`` and ``edgedeploy report`` start without PyTorch.
"""

from __future__ import annotations

import logging
import signal
import sys
from typing import Any

import click

from edgedeploy.cli.commands import COMMANDS
from edgedeploy.cli.options import emit_json
from edgedeploy.core.artifacts import FULL_OR_READ_ONLY
from edgedeploy.core.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EdgeDeployError,
    OutputDirError,
    Terminated,
    UserCodeError,
)
from edgedeploy.core.logcapture import quiet_tensorflow_env
from edgedeploy.core.usercode import UserExit, describe_exit, guard_process, last_contained, real_exit
from edgedeploy.core.version import __version__

__all__ = ["cli", "main"]

log = logging.getLogger("edgedeploy")


class _Cli(click.Group):
    """Turns every failure into one line on stderr (and a JSON error object with --json)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            # A bad option value or a missing argument: one line like every other error (the usage text
            # is in --help).
            self._fail(ctx, exc.format_message(), exc.exit_code, exc)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except KeyboardInterrupt as exc:
            self._fail(ctx, "interrupted", EXIT_INTERRUPTED, exc)
        except (SystemExit, UserExit) as exc:
            # No edgedeploy code exits from inside a command: this is a user's code (their forward, traced by a
            # converter outside a contained call) ending the process; it must not pass for a finished run.
            owner = last_contained()
            error = UserCodeError(f"{owner}: its code (factory or forward) {describe_exit(exc)}" if owner else
                                  f"code edgedeploy loaded {describe_exit(exc)}")
            self._fail(ctx, str(error), error.exit_code, exc)
        except Terminated as exc:
            self._fail(ctx, "terminated", EXIT_TERMINATED, exc)
        except EdgeDeployError as exc:
            self._fail(ctx, str(exc), exc.exit_code, exc)
        except Exception as exc:
            if isinstance(exc, OSError) and exc.errno in FULL_OR_READ_ONLY:
                # A full disk or a read-only place met mid-write: the partial files are already gone
                # (staging folders, temporary names), so this is a bad output place, not a bug.
                where = f"{exc.filename}: " if exc.filename else ""
                self._fail(ctx, f"{where}cannot write ({exc.strerror})", OutputDirError.exit_code, exc)
            if ctx.obj and ctx.obj.get("debug"):
                raise
            self._fail(ctx, f"internal error: {exc.__class__.__name__}: {str(exc)[:300]} (rerun with --debug for the traceback)", EXIT_INTERNAL, exc)

    @staticmethod
    def _fail(ctx: click.Context, message: str, code: int, exc: BaseException) -> None:
        message = " ".join(message.split())  # always a single line
        if ctx.obj and ctx.obj.get("debug"):
            import traceback

            # With its causes: a converter's error is raised from the tool's own exception.
            traceback.print_exception(exc, chain=True)
        if ctx.obj and ctx.obj.get("json"):
            emit_json({"error": message, "exit_code": code})
        click.echo(f"error: {message}", err=True)
        ctx.exit(code)


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("edgedeploy").setLevel(level)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="edgedeploy")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-v info, -vv debug).")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, debug: bool) -> None:
    """Export MobileNetV2 to edge formats and prove it still works there."""
    ctx.ensure_object(dict)["debug"] = debug
    _setup_logging(verbose)


for _command in COMMANDS:
    cli.add_command(_command)


def _raise_terminated(_signum: int, _frame: Any) -> None:
    raise Terminated()


def main() -> None:
    # SIGTERM (CI cancelling a job, `timeout`, docker stop) unwinds like Ctrl-C: no staging
    # folder, half-written artifact or redirected descriptor is left behind.
    signal.signal(signal.SIGTERM, _raise_terminated)
    # A user's code that calls os._exit raises instead; a Ctrl-C is told apart from code raising KeyboardInterrupt.
    guard_process()
    # TensorFlow's and LiteRT's C++ loggers read their level once, when their library loads: set it first.
    quiet_tensorflow_env()
    try:
        cli(prog_name="edgedeploy")
    except SystemExit as exc:
        if exc.code in (EXIT_INTERRUPTED, EXIT_TERMINATED):
            _leave(exc.code)
        raise
    except KeyboardInterrupt:  # met while the interrupted command was already unwinding (its line is printed)
        _leave(EXIT_INTERRUPTED)


def _leave(code: int) -> None:
    """End an interrupted or terminated run now, with its exit code. Its clean-up (staging folders, redirected
    descriptors, the partial artifact) ran while the command unwound; what remains of the interpreter's shutdown
    (joining libraries' worker threads, their exit hooks) met a KeyboardInterrupt on loaded machines and ended the
    process by SIGINT (-2) instead of 130, so the code would depend on load."""
    sys.stdout.flush()
    sys.stderr.flush()
    real_exit(code)

