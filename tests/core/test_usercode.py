"""A user's code contained: whatever it raises or exits with becomes one UserCodeError (exit 4) naming it; a real
Ctrl-C still interrupts; a forked child still exits. Through the CLI (a fresh process, whose main() guards
os._exit): an export, a gate and a NaN-producing model end with exit 4, one line, nothing written."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edgedeploy.core import usercode
from edgedeploy.core.errors import ConfigError, UserCodeError
from edgedeploy.core.usercode import contained

USER_MODULES = Path(__file__).resolve().parents[1] / "models"
REAL_EXIT = os._exit


@pytest.mark.parametrize(("code", "said"), [
    (lambda: sys.exit(2), "called exit(2)"),
    (lambda: os._exit(5), "called os._exit(5)"),
    (lambda: 1 / 0, "raised ZeroDivisionError: division by zero"),
    (lambda: (_ for _ in ()).throw(GeneratorExit), "raised GeneratorExit"),
])
def test_anything_leaving_user_code_becomes_one_error(code, said: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UserCodeError, match=re.escape(f"pkg:make: the factory {said}")) as info:
        with contained("pkg:make", "the factory"):
            code()
    assert info.value.exit_code == 4 and "\n" not in str(info.value)
    assert os._exit is REAL_EXIT


def test_edgedeploy_errors_pass_through_unchanged() -> None:
    with pytest.raises(ConfigError, match="^bad option$"):
        with contained("pkg:make", "the factory"):
            raise ConfigError("bad option")


def test_keyboard_interrupt_from_code_vs_a_real_ctrl_c(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(usercode._state, "sigint", False)
    previous = signal.getsignal(signal.SIGINT)
    try:
        signal.signal(signal.SIGINT, usercode._on_sigint)  # what guard_process installs
        with pytest.raises(UserCodeError, match="raised KeyboardInterrupt \\(no Ctrl-C was pressed\\)"):
            with contained("pkg:make", "forward"):
                raise KeyboardInterrupt
        with pytest.raises(KeyboardInterrupt):  # a real SIGINT is an interrupt, wherever it lands
            with contained("pkg:make", "forward"):
                os.kill(os.getpid(), signal.SIGINT)
                signal.pthread_sigmask(signal.SIG_BLOCK, [])  # let the handler run here
        # Without SIGINT tracking (Python's own handler) a Ctrl-C cannot be ruled out: the interrupt is kept.
        monkeypatch.setitem(usercode._state, "sigint", False)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        with pytest.raises(KeyboardInterrupt):
            with contained("pkg:make", "forward"):
                raise KeyboardInterrupt
        # With SIGINT ignored (started from a background job) no Ctrl-C can raise it: the code did.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with pytest.raises(UserCodeError, match="raised KeyboardInterrupt"):
            with contained("pkg:make", "forward"):
                raise KeyboardInterrupt
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_forked_child_still_exits_under_the_guard() -> None:
    with contained("pkg:make", "the factory"):
        pid = os.fork()
        if pid == 0:
            os._exit(7)  # the child's own exit, not the parent's guard
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 7


def _edgedeploy(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{USER_MODULES}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run([sys.executable, "-m", "edgedeploy", *args], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=600, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(("factory", "message"), [
    ("user_modules:hard_exit_later", "user_modules:hard_exit_later: its code (factory or forward) called os._exit(3)"),
    ("user_modules:interrupts", "user_modules:interrupts: the factory raised KeyboardInterrupt (no Ctrl-C"),
    ("builtins:exit", "builtins:exit: the factory called exit(None)"),
    ("user_modules:nan_outputs", "parity failed: the outputs are not finite (NaN or infinity)"),
])
def test_cli_export_of_misbehaving_user_code(tmp_path: Path, factory: str, message: str) -> None:
    done = _edgedeploy(tmp_path, "export", "--model", factory, "--input-shape", "1,3,32,32", "--target", "onnx",
                       "--out", "out", "--parity-images", "4")
    assert done.returncode == 4, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: ") and message in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()


def test_gate_on_a_recipe_whose_factory_exits(tmp_path: Path, data_root: Path) -> None:
    (tmp_path / "recipe.yaml").write_text(
        "name: exits\nmodel: {module: builtins, factory: exit, input_shape: [1, 3, 32, 32]}\n"
        f"evaluation: {{data: {data_root / 'imagenet-subset' / 'val'}}}\n"
        "targets:\n  onnx: {}\n")
    done = _edgedeploy(tmp_path, "gate", "recipe.yaml")
    assert done.returncode == 4, done.stderr
    assert "builtins:exit: the factory called exit(None)" in done.stderr and "recipe.yaml:" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()
