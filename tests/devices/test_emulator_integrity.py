"""arm64-emu's refusals, without qemu or the network: a bad signature, a hash that does not match
the signed index and a .deb member that would land outside the root are IntegrityErrors; a guest
that hangs or fails is a RemoteRunError. Both are ValidationErrors (exit 4), and each keeps the
error it translates as its cause (--debug shows it)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest

from edgedeploy.core.errors import DependencyError, IntegrityError, RemoteRunError, ValidationError
from edgedeploy.devices.qemu import guest
from edgedeploy.devices.qemu.apt import KEYRING, fetch, verify_signature


def _ar_member(name: str, data: bytes) -> bytes:
    header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
    return header + data + (b"\n" if len(data) % 2 else b"")


def _tar_gz(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def make_deb(path: Path, members: list[tuple[str, bytes]]) -> Path:
    """A minimal .deb (ar: debian-binary, control.tar.gz, data.tar.gz) holding ``members``."""
    control = _tar_gz([("./control", b"Package: toy\nVersion: 1\nArchitecture: arm64\n")])
    path.write_bytes(b"!<arch>\n" + _ar_member("debian-binary", b"2.0\n") + _ar_member("control.tar.gz", control)
                     + _ar_member("data.tar.gz", _tar_gz(members)))
    return path


def test_these_errors_keep_exit_code_4():
    assert issubclass(IntegrityError, ValidationError) and issubclass(RemoteRunError, ValidationError)
    assert IntegrityError.exit_code == RemoteRunError.exit_code == 4


def test_a_download_whose_hash_differs_from_the_signed_index_is_refused(tmp_path):
    source = tmp_path / "python3.11.deb"
    source.write_bytes(b"not what the index promised")
    dest = tmp_path / "cache" / "python3.11.deb"
    dest.parent.mkdir()
    with pytest.raises(IntegrityError, match="sha256 does not match the signed index"):
        fetch(source.as_uri(), dest, sha256="0" * 64)
    assert not dest.exists() and not dest.with_suffix(".deb.part").exists()  # nothing half-trusted is kept


def test_an_unreachable_mirror_is_a_dependency_error_with_its_cause(tmp_path):
    with pytest.raises(DependencyError, match="cannot download") as caught:
        fetch((tmp_path / "missing").as_uri(), tmp_path / "x")
    assert isinstance(caught.value.__cause__, OSError)


@pytest.mark.skipif(shutil.which("gpgv") is None or not KEYRING.is_file(),
                    reason="needs gpgv and debian-archive-keyring")
def test_an_unsigned_release_file_is_refused(tmp_path):
    in_release = tmp_path / "deb.debian.org_bookworm.InRelease"
    in_release.write_text("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nOrigin: Debian\n"
                          "-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n")
    with pytest.raises(IntegrityError, match="bad signature, refused"):
        verify_signature(in_release)
    assert not in_release.exists()  # never reused by the next set-up


def test_a_deb_member_outside_the_root_is_refused(tmp_path):
    pytest.importorskip("debian", reason="needs the [emu] extra (python-debian)")
    from edgedeploy.devices.qemu.unpack import extract_deb

    root = tmp_path / "root"
    root.mkdir()
    good = make_deb(tmp_path / "good.deb", [("./usr/lib/libtoy.so", b"\x7fELF")])
    extract_deb(good, root)
    assert (root / "usr/lib/libtoy.so").read_bytes() == b"\x7fELF"
    evil = make_deb(tmp_path / "evil.deb", [("./usr/../../escaped", b"owned")])
    with pytest.raises(IntegrityError, match=r"evil.deb: member \./usr/\.\./\.\./escaped would be written outside"):
        extract_deb(evil, root)
    assert not (tmp_path / "escaped").exists()


def test_a_deb_member_through_a_link_out_of_the_root_is_refused(tmp_path):
    pytest.importorskip("debian", reason="needs the [emu] extra (python-debian)")
    from edgedeploy.devices.qemu.unpack import extract_deb

    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "etc").symlink_to(outside)  # as a link an earlier member made would
    with pytest.raises(IntegrityError, match="would be written outside the root"):
        extract_deb(make_deb(tmp_path / "evil.deb", [("./etc/passwd", b"owned")]), root)
    assert list(outside.iterdir()) == []


@pytest.fixture()
def fake_root(tmp_path, monkeypatch):
    """A set-up root (its marker only) and a stand-in qemu whose behaviour the test writes."""
    monkeypatch.setenv("EDGEDEPLOY_CACHE", str(tmp_path / "cache"))
    root = guest.root_dir()
    root.mkdir(parents=True)
    (root / guest.MARKER).write_text(json.dumps({"litert": "0.0", "numpy": "0.0"}))
    qemu = tmp_path / "qemu-aarch64-static"
    monkeypatch.setattr(guest, "qemu_path", lambda: str(qemu))

    def behave(script: str) -> None:
        qemu.write_text("#!/bin/sh\n" + script)
        qemu.chmod(0o755)

    return behave


def test_an_emulated_run_that_hangs_is_a_remote_run_error(fake_root):
    fake_root("sleep 30\n")
    with pytest.raises(RemoteRunError, match="did not finish within 1 s") as caught:
        guest.run_guest_python(["-c", "pass"], timeout=1)
    assert isinstance(caught.value.__cause__, subprocess.TimeoutExpired)


def test_an_emulated_litert_run_that_fails_is_a_remote_run_error(fake_root, tmp_path):
    from edgedeploy.devices.qemu.runner import _run_model

    fake_root("echo 'RuntimeError: Encountered unresolved custom op' >&2\nexit 1\n")
    with pytest.raises(RemoteRunError, match=r"emulated LiteRT run failed \(exit 1\): RuntimeError: Encountered"):
        _run_model(tmp_path / "m.tflite", np.zeros((1, 4), np.float32), threads=1, xnnpack=True)
    fake_root("echo 'not json'\n")
    with pytest.raises(RemoteRunError, match="emulated LiteRT run gave no result"):
        _run_model(tmp_path / "m.tflite", np.zeros((1, 4), np.float32), threads=1, xnnpack=True)


def test_an_emulator_that_is_not_set_up_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEDEPLOY_CACHE", str(tmp_path))
    with pytest.raises(DependencyError, match=r"run `edgedeploy devices setup arm64-emu`"):
        guest.run_guest_python(["-c", "pass"], timeout=1)
