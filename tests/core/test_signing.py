"""Signatures in the OpenSSF model-signing format, with real keys made by cryptography and the real model-signing:
sign, verify, every way a signed export can stop matching its signature, and every key or signature file
model-signing cannot use, refused in one line (exit 3) before it reaches model-signing."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgedeploy.cli.app import cli
from edgedeploy.core.errors import ArtifactMismatchError, InputFileError, OutputDirError
from edgedeploy.core.hashing import with_digest
from edgedeploy.core.manifest import DIGEST_KEY, manifest_path

pytest.importorskip("model_signing", reason="needs the [sign] extra (model-signing)")

from cryptography import x509  # model-signing's dependency: there with the extra only
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x25519

from edgedeploy.core.signing import sign_artifact, signature_path, verify_signature

pytestmark = [pytest.mark.data]

ACCEPTED = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}


def _private_pem(key, password: bytes | None = None) -> bytes:  # type: ignore[no-untyped-def]
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def _public_pem(key) -> bytes:  # type: ignore[no-untyped-def]
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _keys(folder: Path, name: str, curve: type[ec.EllipticCurve] = ec.SECP256R1,
          password: bytes | None = None) -> tuple[Path, Path]:
    key = ec.generate_private_key(curve())
    private, public = folder / f"{name}.pem", folder / f"{name}.pub"
    private.write_bytes(_private_pem(key, password))
    public.write_bytes(_public_pem(key))
    return private, public


def _certificate(key: ec.EllipticCurvePrivateKey) -> bytes:
    import datetime

    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "release")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
                   .sign(key, hashes.SHA256()))
    return certificate.public_bytes(serialization.Encoding.PEM)


def _file(data: Callable[[], bytes]) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / "key"
        path.write_bytes(data())
        return path

    return make


def _folder(folder: Path) -> Path:
    (folder / "key").mkdir()
    return folder / "key"


def _fifo(folder: Path) -> Path:
    os.mkfifo(folder / "key")  # reading it would block: it must be refused before it is opened
    return folder / "key"


# Each file that is not a key model-signing can use, and what the refusal says it is.
_MAKERS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "rsa-private": (_file(lambda: _private_pem(rsa.generate_private_key(65537, 2048))), "an RSA private key"),
    "rsa-public": (_file(lambda: _public_pem(rsa.generate_private_key(65537, 2048))), "an RSA public key"),
    "ed25519-private": (_file(lambda: _private_pem(ed25519.Ed25519PrivateKey.generate())), "an Ed25519 private key"),
    "ed25519-public": (_file(lambda: _public_pem(ed25519.Ed25519PrivateKey.generate())), "an Ed25519 public key"),
    "ed448-private": (_file(lambda: _private_pem(ed448.Ed448PrivateKey.generate())), "an Ed448 private key"),
    "ed448-public": (_file(lambda: _public_pem(ed448.Ed448PrivateKey.generate())), "an Ed448 public key"),
    "dsa-private": (_file(lambda: _private_pem(dsa.generate_private_key(1024))), "a DSA private key"),
    "dsa-public": (_file(lambda: _public_pem(dsa.generate_private_key(1024))), "a DSA public key"),
    "x25519-private": (_file(lambda: _private_pem(x25519.X25519PrivateKey.generate())), "an X25519 private key"),
    "x25519-public": (_file(lambda: _public_pem(x25519.X25519PrivateKey.generate())), "an X25519 public key"),
    "secp256k1-private": (_file(lambda: _private_pem(ec.generate_private_key(ec.SECP256K1()))),
                          "an EC private key on secp256k1"),
    "secp256k1-public": (_file(lambda: _public_pem(ec.generate_private_key(ec.SECP256K1()))),
                         "an EC public key on secp256k1"),
    # The other half of a usable pair: a public key to sign with, a private key to verify with.
    "p256-public": (_file(lambda: _public_pem(ec.generate_private_key(ec.SECP256R1()))),
                    "an EC public key on NIST P-256"),
    "p256-private": (_file(lambda: _private_pem(ec.generate_private_key(ec.SECP256R1()))),
                     "an EC private key on NIST P-256"),
    "p256-encrypted": (_file(lambda: _private_pem(ec.generate_private_key(ec.SECP256R1()), b"pw")),
                       "an encrypted private key"),
    "p256-der": (_file(lambda: ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())),
                 "a DER-encoded EC private key on NIST P-256"),
    "openssh-ed25519": (_file(lambda: ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())),
                        "an OpenSSH Ed25519 private key"),
    "certificate": (_file(lambda: _certificate(ec.generate_private_key(ec.SECP256R1()))),
                    "an X.509 certificate (an EC public key on NIST P-256)"),
    "random": (_file(lambda: os.urandom(300)), "no key or certificate (300 bytes)"),
    "empty": (_file(lambda: b""), "an empty file"),
    "huge": (_file(lambda: b"-----BEGIN PRIVATE KEY-----\n" + b"A" * 2**20), "more than the 1 MiB"),
    "folder": (_folder, "is a folder"),
    "fifo": (_fifo, "is a FIFO"),
    "dev-zero": (lambda _: Path("/dev/zero"), "is a character device"),
    "missing": (lambda folder: folder / "key", "not found"),
}
# An encrypted key is a password problem when signing (test_password_problems_are_one_line).
SIGN_REFUSED = [kind for kind in _MAKERS if kind not in {"p256-private", "p256-encrypted"}]
VERIFY_REFUSED = [kind for kind in _MAKERS if kind not in {"p256-public"}]


def _refused_key(tmp_path: Path, kind: str) -> tuple[Path, str]:
    make, found = _MAKERS[kind]
    folder = tmp_path / "keys"
    folder.mkdir()
    return make(folder), found


def _one_line(message: str) -> str:
    assert "\n" not in message.strip() and "Traceback" not in message, message
    return message


@pytest.fixture()
def artifact(onnx_artifact, tmp_path: Path) -> Path:
    """A copy of the shared export, with its manifest, that a test may sign or change."""
    artifact = tmp_path / "a" / Path(onnx_artifact.path).name
    artifact.parent.mkdir()
    shutil.copy(onnx_artifact.path, artifact)
    shutil.copy(manifest_path(onnx_artifact.path), manifest_path(artifact))
    return artifact


@pytest.fixture()
def signed(artifact: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    private, public = _keys(tmp_path, "release")
    result = CliRunner().invoke(cli, ["sign", str(artifact), "--key", str(private), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["signature"] == str(artifact) + ".sig"
    return artifact, private, public


def _verify(artifact: Path, public: Path, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["verify", str(artifact), "--public-key", str(public), "--json", *args])


def test_a_signed_export_verifies(signed) -> None:  # type: ignore[no-untyped-def]
    artifact, _, public = signed
    result = _verify(artifact, public)
    assert result.exit_code == 0, result.output
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["signature"]["status"] == "pass" and "release.pub" in checks["signature"]["detail"]


@pytest.mark.parametrize("curve", sorted(ACCEPTED))
def test_each_curve_model_signing_accepts_signs_and_verifies(artifact: Path, tmp_path: Path, curve: str) -> None:
    private, public = _keys(tmp_path, curve, ACCEPTED[curve])
    assert sign_artifact(artifact, private) == signature_path(artifact)
    assert "1 file(s) match" in verify_signature(artifact, public)
    _, other = _keys(tmp_path, "other", ACCEPTED[curve])
    with pytest.raises(ArtifactMismatchError, match="does not verify with other.pub"):
        verify_signature(artifact, other)


@pytest.mark.parametrize("kind", SIGN_REFUSED)
def test_sign_refuses_every_other_key_in_one_line(artifact: Path, tmp_path: Path, kind: str) -> None:
    key, found = _refused_key(tmp_path, kind)
    with pytest.raises(InputFileError) as refused:
        sign_artifact(artifact, key)
    message = _one_line(str(refused.value))
    assert message.startswith(f"{key}:") and found in message, message
    assert not os.path.lexists(signature_path(artifact))


@pytest.mark.parametrize("kind", VERIFY_REFUSED)
def test_verify_refuses_every_other_key_in_one_line(signed, tmp_path: Path, kind: str) -> None:  # type: ignore[no-untyped-def]
    artifact, _, _ = signed
    key, found = _refused_key(tmp_path, kind)
    with pytest.raises(InputFileError) as refused:
        verify_signature(artifact, key)
    message = _one_line(str(refused.value))
    assert message.startswith(f"{key}:") and found in message, message


@pytest.mark.parametrize("kind", ["rsa-private", "ed25519-private", "ed448-private", "secp256k1-private",
                                  "p256-public", "certificate", "folder", "fifo"])
def test_the_sign_command_refuses_them_with_exit_3(artifact: Path, tmp_path: Path, kind: str) -> None:
    key, found = _refused_key(tmp_path, kind)
    result = CliRunner().invoke(cli, ["sign", str(artifact), "--key", str(key)])
    assert result.exit_code == 3 and found in _one_line(result.stderr), result.output
    assert not os.path.lexists(signature_path(artifact))


@pytest.mark.parametrize("kind", ["rsa-public", "ed25519-public", "secp256k1-public", "p256-private", "folder"])
def test_the_verify_command_refuses_them_with_exit_3(signed, tmp_path: Path, kind: str) -> None:  # type: ignore[no-untyped-def]
    artifact, _, _ = signed
    key, found = _refused_key(tmp_path, kind)
    result = _verify(artifact, key)
    assert result.exit_code == 3 and found in _one_line(result.stderr), result.output
    signature = {c["name"]: c for c in json.loads(result.stdout)["checks"]}["signature"]
    assert signature["status"] == "fail" and found in signature["detail"]


@pytest.mark.parametrize("kind", ["rsa-private", "ed25519-private"])
def test_a_real_sign_process_ends_in_one_line_not_a_traceback(artifact: Path, tmp_path: Path, kind: str) -> None:
    """The original report: RSA and Ed25519 keys ended `edgedeploy sign` in a traceback, exit 70."""
    key, found = _refused_key(tmp_path, kind)
    result = subprocess.run([sys.executable, "-m", "edgedeploy", "sign", str(artifact), "--key", str(key)],
                            check=False, capture_output=True, text=True, timeout=300,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 3, result.stderr
    assert _one_line(result.stderr).startswith("error: ") and found in result.stderr
    assert not os.path.lexists(signature_path(artifact))


def test_an_encrypted_key_signs_with_its_password_from_the_environment(artifact: Path, tmp_path: Path) -> None:
    """The password reaches cryptography as UTF-8 bytes (as a str it was a TypeError: --password-env never
    worked)."""
    private, public = _keys(tmp_path, "release", ec.SECP384R1, password="pässwörd 1".encode())
    result = CliRunner().invoke(cli, ["sign", str(artifact), "--key", str(private), "--password-env", "RELEASE_PW"],
                                env={"RELEASE_PW": "pässwörd 1"})
    assert result.exit_code == 0, result.output
    verified = _verify(artifact, public)
    assert verified.exit_code == 0, verified.output


@pytest.mark.parametrize(("encrypted", "password", "message"), [
    (True, None, "the private key is encrypted and no password was given"),
    (True, "wrong", "the password does not decrypt this private key"),
    (False, "pw", "the private key is not encrypted, but a password was given"),
])
def test_password_problems_are_one_line(artifact: Path, tmp_path: Path, encrypted: bool, password: str | None,
                                        message: str) -> None:
    private, _ = _keys(tmp_path, "release", password=b"pw" if encrypted else None)
    args = ["sign", str(artifact), "--key", str(private)] + (["--password-env", "RELEASE_PW"] if password else [])
    result = CliRunner().invoke(cli, args, env={"RELEASE_PW": password})
    assert result.exit_code == 3 and message in _one_line(result.stderr), result.output
    assert not os.path.lexists(signature_path(artifact))


def _in_the_way(kind: str, path: Path) -> None:
    if kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(kind)


@pytest.mark.parametrize(("kind", "message"), [
    ("folder", "a folder is in the way of the signature"),
    ("fifo", "a FIFO is in the way of the signature"),
    ("/dev/null", "cannot be written into /proc, /sys or /dev"),
])
def test_sign_refuses_a_signature_path_it_cannot_write(artifact: Path, tmp_path: Path, kind: str,
                                                       message: str) -> None:
    private, _ = _keys(tmp_path, "release")
    sig = signature_path(artifact)
    _in_the_way(kind, sig)
    with pytest.raises(OutputDirError, match=message):
        sign_artifact(artifact, private)
    result = CliRunner().invoke(cli, ["sign", str(artifact), "--key", str(private)])
    assert result.exit_code == 3 and message in _one_line(result.stderr), result.output
    assert sig.is_dir() if kind == "folder" else os.path.lexists(sig)  # left as it was


@pytest.mark.parametrize(("kind", "message"), [
    ("folder", "signature is a folder"),
    ("fifo", "signature is a FIFO"),
    ("/dev/zero", "signature is a character device"),
])
def test_verify_refuses_a_signature_that_is_not_a_file(signed, kind: str, message: str) -> None:  # type: ignore[no-untyped-def]
    artifact, _, public = signed
    sig = signature_path(artifact)
    sig.unlink()
    _in_the_way(kind, sig)
    with pytest.raises(InputFileError, match=message):
        verify_signature(artifact, public)
    result = _verify(artifact, public, "--signature", str(sig))
    assert result.exit_code == 3 and message in _one_line(result.stderr), result.output


def _truncated(bundle: bytes) -> bytes:
    return bundle[: len(bundle) // 2]


def _huge(bundle: bytes) -> bytes:
    return bundle + b" " * (16 * 2**20)


def _with_material(bundle: bytes, **changes: str) -> bytes:
    """The bundle with its named public key changed: model-signing itself never reads it."""
    data = json.loads(bundle)
    data["verificationMaterial"]["publicKey"].update(changes)
    return json.dumps(data).encode()


@pytest.mark.parametrize(("change", "message"), [
    (lambda bundle: b"not json", "not a signature bundle (not JSON text)"),
    (lambda bundle: b"", "not a signature bundle (not JSON text)"),
    (lambda bundle: b"\xff\xfe" + bundle, "not a signature bundle (not JSON text)"),
    (_truncated, "not a signature bundle (not JSON text)"),
    (lambda bundle: b"[" * 100_000 + b"]" * 100_000, "not a signature bundle (not JSON text)"),
    (lambda bundle: b"[1, 2]", "not a signature bundle (JSON list, not an object)"),
    (lambda bundle: b"{}", "does not verify"),
    (lambda bundle: json.dumps({**json.loads(bundle), "dsseEnvelope": []}).encode(), "does not verify"),
    (lambda bundle: json.dumps({**json.loads(bundle), "dsseEnvelope": {"payload": "x"}}).encode(),
     "does not verify"),
    (lambda bundle: bundle.replace(b'"sig": "', b'"sig": "AAAA'), "does not verify"),
    (_huge, "more than the 16 MiB"),
    (lambda bundle: _with_material(bundle, rawBytes=base64.b64encode(
        _public_pem(ec.generate_private_key(ec.SECP256R1()))).decode()), "names another key"),
    (lambda bundle: _with_material(bundle, keyDetails="PKIX_ECDSA_P384_SHA_384"), "names another key"),
], ids=["text", "empty", "not-utf8", "truncated", "nested", "list", "empty-object", "envelope-list", "bad-base64",
        "other-signature", "huge", "other-named-key", "other-key-details"])
def test_a_broken_signature_file_is_refused_in_one_line(signed, change, message: str) -> None:  # type: ignore[no-untyped-def]
    artifact, _, public = signed
    sig = signature_path(artifact)
    sig.write_bytes(change(sig.read_bytes()))
    with pytest.raises(InputFileError, match=message.replace("(", r"\(").replace(")", r"\)")) as refused:
        verify_signature(artifact, public)
    _one_line(str(refused.value))


def test_no_bit_flip_in_the_signature_ends_in_anything_but_one_line(signed) -> None:  # type: ignore[no-untyped-def]
    """Bits flipped through the whole bundle: each is refused in one line, or (rarely) verifies where the change
    means nothing: lenient base64 dropping a character turned invalid, an unused key renamed. A flip in the
    public key the bundle names is always refused, though model-signing ignores that part."""
    artifact, _, public = signed
    sig = signature_path(artifact)
    original = sig.read_bytes()
    named = range(original.index(b'"verificationMaterial"'), original.index(b'"dsseEnvelope"'))
    verified = []
    for position in range(0, len(original), max(1, len(original) // 120)):
        flipped = bytearray(original)
        flipped[position] ^= 1 << (position % 8)
        sig.write_bytes(bytes(flipped))
        try:
            verify_signature(artifact, public)
        except InputFileError as exc:
            _one_line(str(exc))
        else:
            verified.append(position)
    assert not [position for position in verified if position in named], verified
    assert len(verified) < 10, verified


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
        (["sign", str(onnx_artifact.path), "--key", str(tmp_path / "bad.pem")], 3, "no key or certificate (9 bytes)"),
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

    artifact, _, public = signed
    recipe = Path(__file__).resolve().parents[2] / "recipes" / "mobilenet_v2.yaml"
    baseline = json.loads((recipe.parent / "baselines" / "mobilenet_v2.json").read_text())
    entry = baseline["targets"]["onnx"]
    entry.update(artifact=artifact.name, sha256=cached_sha256(artifact))
    entry.pop("files", None)
    baseline["targets"] = {"onnx": entry}
    results = artifact.parent / "results.json"
    results.write_text(json.dumps(with_digest(baseline, RESULTS_DIGEST)))
    args = ["gate", str(recipe), "--results", str(results), "--targets", "onnx", "--public-key"]
    passed = CliRunner().invoke(cli, [*args, str(public)])
    assert passed.exit_code == 0, passed.output
    rsa_key, found = _refused_key(tmp_path, "rsa-public")
    refused = CliRunner().invoke(cli, [*args, str(rsa_key)])
    assert refused.exit_code == 3 and found in _one_line(refused.stderr), refused.output
    Path(str(artifact) + ".sig").unlink()
    unsigned = CliRunner().invoke(cli, [*args, str(public)])
    assert unsigned.exit_code == 3 and "no signature" in unsigned.stderr, unsigned.output
