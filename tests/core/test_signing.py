"""Signatures in the OpenSSF model-signing format, with a real elliptic-curve key pair: sign, verify, and every
way a signed export can stop matching its signature."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgedeploy.cli.app import cli
from edgedeploy.core.hashing import with_digest
from edgedeploy.core.manifest import DIGEST_KEY, manifest_path

pytest.importorskip("model_signing", reason="needs the [sign] extra (model-signing)")

pytestmark = [pytest.mark.data]


def _keys(folder: Path, name: str) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    private, public = folder / f"{name}.pem", folder / f"{name}.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


@pytest.fixture()
def signed(onnx_artifact, tmp_path: Path) -> tuple[Path, Path, Path]:
    artifact = tmp_path / "a" / Path(onnx_artifact.path).name
    artifact.parent.mkdir()
    shutil.copy(onnx_artifact.path, artifact)
    shutil.copy(manifest_path(onnx_artifact.path), manifest_path(artifact))
    private, public = _keys(tmp_path, "release")
    result = CliRunner().invoke(cli, ["sign", str(artifact), "--key", str(private), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["signature"] == str(artifact) + ".sig"
    return artifact, private, public


def _verify(artifact: Path, public: Path):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["verify", str(artifact), "--public-key", str(public), "--json"])


def test_a_signed_export_verifies(signed) -> None:  # type: ignore[no-untyped-def]
    artifact, _, public = signed
    result = _verify(artifact, public)
    assert result.exit_code == 0, result.output
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["signature"]["status"] == "pass" and "release.pub" in checks["signature"]["detail"]


def test_another_key_or_no_signature_fails(signed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    artifact, _, _ = signed
    _, stranger = _keys(tmp_path, "stranger")
    result = _verify(artifact, stranger)
    assert result.exit_code == 3 and "does not verify with stranger.pub" in result.stdout
    Path(str(artifact) + ".sig").unlink()
    result = _verify(artifact, stranger)
    assert result.exit_code == 3 and "no signature" in result.stdout


def test_a_manifest_rewritten_consistently_breaks_the_signature(signed) -> None:  # type: ignore[no-untyped-def]
    """Someone who edits the manifest and recomputes its digest passes the digest check, not the signature."""
    artifact, _, public = signed
    path = manifest_path(artifact)
    manifest = json.loads(path.read_text())
    manifest["preprocessing"]["mean"] = [0.0, 0.0, 0.0]
    path.write_text(json.dumps(with_digest(manifest, DIGEST_KEY)))
    assert CliRunner().invoke(cli, ["inspect", str(artifact)]).exit_code == 0  # the digest alone is satisfied
    result = _verify(artifact, public)
    assert result.exit_code == 3 and "does not verify" in result.stdout


def test_a_changed_artifact_fails_before_the_signature_is_read(signed) -> None:  # type: ignore[no-untyped-def]
    artifact, _, public = signed
    data = bytearray(artifact.read_bytes())
    data[-1] ^= 1
    artifact.write_bytes(bytes(data))
    result = _verify(artifact, public)
    assert result.exit_code == 3
    checks = {c["name"]: c["status"] for c in json.loads(result.stdout)["checks"]}
    assert checks["hashes"] == "fail"


def test_signing_problems_are_one_line(onnx_artifact, tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_text("not a key")
    for args, code, message in (
        (["sign", str(onnx_artifact.path), "--key", str(tmp_path / "bad.pem")], 3, "not a usable elliptic-curve private key"),
        (["sign", str(onnx_artifact.path), "--key", str(tmp_path / "none.pem")], 3, "private key not found"),
        (["sign", str(onnx_artifact.path), "--key", str(tmp_path / "bad.pem"), "--password-env", "NO_SUCH_VAR_X"], 2,
         "the variable is not set"),
    ):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == code and message in result.stderr, result.output
        assert result.stderr.count("\n") == 1


def test_gate_can_require_signed_artifacts(signed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from edgedeploy.core.integrity import cached_sha256
    from edgedeploy.recipes.results import DIGEST_KEY as RESULTS_DIGEST

    artifact, private, public = signed
    recipe = Path(__file__).resolve().parents[2] / "recipes" / "mobilenet_v2.yaml"
    baseline = json.loads((recipe.parent / "baselines" / "mobilenet_v2.json").read_text())
    entry = baseline["targets"]["onnx"]
    entry.update(artifact=artifact.name, sha256=cached_sha256(artifact))
    entry.pop("files", None)
    baseline["targets"] = {"onnx": entry}
    results = artifact.parent / "results.json"
    results.write_text(json.dumps(with_digest(baseline, RESULTS_DIGEST)))
    args = ["gate", str(recipe), "--results", str(results), "--targets", "onnx", "--public-key", str(public)]
    passed = CliRunner().invoke(cli, args)
    assert passed.exit_code == 0, passed.output
    Path(str(artifact) + ".sig").unlink()
    unsigned = CliRunner().invoke(cli, args)
    assert unsigned.exit_code == 3 and "no signature" in unsigned.stderr, unsigned.output
