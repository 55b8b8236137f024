"""Signing artifacts with the OpenSSF model-signing format (PyPI ``model-signing``; key-based signing works
offline). The signature covers the artifact's manifest, and the manifest covers every file of the artifact by
sha256 and itself by its content digest: verifying the signature and then the manifest proves every byte that
was exported. The signature is written beside the artifact, ``<artifact>.sig`` (a Sigstore bundle).

Keys are those model-signing 1.0.1 signs and verifies with (``model_signing/_signing/sign_ec_key.py``:
``load_pem_private_key`` / ``load_pem_public_key``, then ``_check_supported_ec_key``): PEM elliptic-curve keys on
NIST P-256, P-384 or P-521. Every key file is read here first, bounded, and classified with ``cryptography``, so
any other file (an RSA or Ed25519 key, the other half of the pair, a certificate, random bytes) is refused in one
line naming what it holds, before model-signing sees it."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgedeploy.core.artifacts import atomic_path
from edgedeploy.core.errors import ArtifactMismatchError, DependencyError, InputFileError
from edgedeploy.core.integrity import check_integrity
from edgedeploy.core.jsonfile import parse_json
from edgedeploy.core.manifest import manifest_path
from edgedeploy.core.paths import output_file, read_bytes

__all__ = ["ACCEPTED_CURVES", "SIGNATURE_SUFFIX", "check_public_key", "sign_artifact", "signature_path", "verify_signature"]

SIGNATURE_SUFFIX = ".sig"
# model_signing/_signing/sign_ec_key.py, _check_supported_ec_key: `curve not in ["secp256r1", "secp384r1",
# "secp521r1"]` is refused (the curves of Sigstore's PublicKeyDetails); cryptography's name -> the usual one.
ACCEPTED_CURVES = {"secp256r1": "NIST P-256", "secp384r1": "NIST P-384", "secp521r1": "NIST P-521"}
_ACCEPTED = "elliptic-curve {role}s (NIST P-256, P-384, P-521) in PEM"
# What a bundle records for each curve's key (sign_ec_key.py, Signer._get_verification_material).
_KEY_DETAILS = {"secp256r1": "PKIX_ECDSA_P256_SHA_256", "secp384r1": "PKIX_ECDSA_P384_SHA_384",
                "secp521r1": "PKIX_ECDSA_P521_SHA_512"}
# A PEM key is a few hundred bytes; a bundle a few KB.
MAX_KEY_BYTES = 2**20
MAX_SIGNATURE_BYTES = 16 * 2**20


def signature_path(artifact: str | Path) -> Path:
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + SIGNATURE_SUFFIX)


def _model_signing() -> Any:
    try:
        import model_signing
    except ImportError:
        raise DependencyError("signing needs model-signing: pip install 'edgedeploy[sign]'") from None
    return model_signing


def _offline_signing_config(model_signing: Any) -> Any:
    """model-signing 1.0's signing Config starts with the Sigstore signer, which fetches Sigstore's trust root over
    the network before a key signer replaces it (offline: a TUF error). This one starts without a signer, as 1.1's
    does; the hashing configuration is the library's default."""

    class OfflineConfig(model_signing.signing.Config):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            self._hashing_config = model_signing.hashing.Config()
            self._signer = None

    return OfflineConfig


def _an(phrase: str) -> str:
    """``phrase`` with its article, as said aloud: "an RSA", "an EC", "an X.509", "an OpenSSH", "an encrypted",
    "a DSA", "a DER-encoded"."""
    return ("an " if phrase[0] in "AEIORXaeio" else "a ") + phrase


def _key_phrase(key: Any, role: str, encoding: str = "") -> str:
    """What ``key`` (a cryptography key object) is, for a message: "an RSA private key", "an EC public key on
    secp256k1", "a DER-encoded EC private key on NIST P-256"."""
    from cryptography.hazmat.primitives.asymmetric import dh, dsa, ec, ed448, ed25519, rsa, x448, x25519

    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        curve = key.curve.name
        return _an(f"{encoding}EC {role} on {ACCEPTED_CURVES.get(curve, curve)}")
    # Each module names its classes <name>PrivateKey and <name>PublicKey.
    for name, module in (("RSA", rsa), ("Ed25519", ed25519), ("Ed448", ed448), ("DSA", dsa), ("X25519", x25519),
                         ("X448", x448), ("DH", dh)):
        if isinstance(key, (getattr(module, f"{name}PrivateKey"), getattr(module, f"{name}PublicKey"))):
            return _an(f"{encoding}{name} {role}")
    return _an(f"{encoding}{type(key).__name__} {role}")


def _loaders() -> tuple[tuple[str, str, Callable[[bytes], Any]], ...]:
    """(encoding, role, loader) for every key or certificate encoding cryptography reads, the PEM ones that
    model-signing reads first."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    return (("", "private key", lambda data: serialization.load_pem_private_key(data, None)),
            ("", "public key", serialization.load_pem_public_key),
            ("", "certificate", x509.load_pem_x509_certificate),
            ("DER-encoded ", "private key", lambda data: serialization.load_der_private_key(data, None)),
            ("DER-encoded ", "public key", serialization.load_der_public_key),
            ("DER-encoded ", "certificate", x509.load_der_x509_certificate),
            ("OpenSSH ", "private key", lambda data: serialization.load_ssh_private_key(data, None)),
            ("OpenSSH ", "public key", _load_ssh_public_key))


def _load_ssh_public_key(data: bytes) -> Any:
    """An OpenSSH public key line ("ssh-ed25519 AAAA... comment"). It has no framing: any other text with a space
    reaches cryptography's key-type lookup and reads as an unsupported algorithm, so the type is checked first."""
    from cryptography.hazmat.primitives import serialization

    if not data.startswith((b"ssh-", b"ecdsa-", b"sk-")):
        raise ValueError("not an OpenSSH public key")
    return serialization.load_ssh_public_key(data)


def _describe(data: bytes) -> str:
    """What a key file holds, for the message that refuses it: "an Ed25519 private key", "an X.509 certificate
    (an RSA public key)", "an encrypted private key", "an empty file", "no key or certificate (300 bytes)"."""
    from cryptography.exceptions import UnsupportedAlgorithm

    if not data.strip():
        return "an empty file"
    for encoding, role, load in _loaders():
        try:
            found = load(data)
        except TypeError:  # cryptography: the key is encrypted and no password was given
            return _an(f"encrypted {encoding}{role}")
        except UnsupportedAlgorithm as exc:  # e.g. an EC key on a curve OpenSSL lacks: "Curve 1.3.132.0.6 ..."
            return _an(f"{encoding}{role} cryptography cannot load ({_first_line(exc)})")
        except ValueError:  # not this encoding, or not this role
            continue
        if role == "certificate":
            return _an(f"{encoding}X.509 certificate ({_key_phrase(found.public_key(), 'public key')})")
        return _key_phrase(found, role, encoding)
    return f"no key or certificate ({len(data)} bytes)"


def _refused(path: Path, found: str, role: str) -> InputFileError:
    verb = "signs with" if role == "private key" else "verifies with"
    return InputFileError(f"{path}: {found}; model-signing {verb} {_ACCEPTED.format(role=role)}")


def _check_curve(path: Path, key: Any, role: str) -> None:
    """model-signing's own check (_check_supported_ec_key) ends in an AttributeError for a key that is not an
    elliptic-curve one: this one refuses it, and an unsupported curve, in one line."""
    from cryptography.hazmat.primitives.asymmetric import ec

    elliptic = isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey))
    if not elliptic or key.curve.name not in ACCEPTED_CURVES:
        raise _refused(path, _key_phrase(key, role), role)


def _is_encrypted(data: bytes) -> bool:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    try:
        serialization.load_pem_private_key(data, None)
    except TypeError:  # cryptography: "Password was not given but private key is encrypted"
        return True
    except (ValueError, UnsupportedAlgorithm):
        pass
    return False


def _check_private_key(path: Path, password: bytes | None) -> None:
    """InputFileError (one line) unless ``path`` is a PEM private key on a curve model-signing signs with, opened
    by ``password`` when encrypted (and only then)."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    data = read_bytes(path, "private key", MAX_KEY_BYTES)
    try:
        key = serialization.load_pem_private_key(data, password)
    except TypeError:  # cryptography: a password for an unencrypted key, or none for an encrypted one
        raise InputFileError(f"{path}: the private key is encrypted and no password was given (--password-env)"
                             if password is None else
                             f"{path}: the private key is not encrypted, but a password was given") from None
    except (ValueError, UnsupportedAlgorithm):
        if password is not None and _is_encrypted(data):
            raise InputFileError(f"{path}: the password does not decrypt this private key") from None
        raise _refused(path, _describe(data), "private key") from None
    _check_curve(path, key, "private key")


def check_public_key(path: Path) -> Any:
    """The key in ``path``; InputFileError (one line) unless it is a PEM public key on a curve model-signing
    verifies with."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    data = read_bytes(path, "public key", MAX_KEY_BYTES)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise _refused(path, _describe(data), "public key") from None
    _check_curve(path, key, "public key")
    return key


def _password_bytes(password: str | None) -> bytes | None:
    # cryptography takes bytes (a str is a TypeError); surrogateescape gives back the original bytes of an
    # environment value that is not UTF-8.
    return None if password is None else password.encode("utf-8", "surrogateescape")


def sign_artifact(artifact: str | Path, private_key: str | Path, password: str | None = None) -> Path:
    """Sign ``artifact`` (checked against its manifest first: only an intact export is signed) with an
    elliptic-curve private key (PEM, NIST P-256/P-384/P-521; ``password`` when it is encrypted); returns the
    signature's path."""
    artifact, private_key = Path(artifact), Path(private_key)
    model_signing = _model_signing()
    # The cheap refusals first: a folder or a device where the signature goes, a key model-signing cannot use.
    out = output_file(signature_path(artifact), "signature")
    secret = _password_bytes(password)
    _check_private_key(private_key, secret)
    if check_integrity(artifact).verified is None:
        raise InputFileError(f"{artifact}: no manifest beside it: only edgedeploy exports are signed")
    config = _offline_signing_config(model_signing)().use_elliptic_key_signer(private_key=private_key,
                                                                              password=secret)
    with atomic_path(out) as tmp:
        config.sign(manifest_path(artifact), tmp)
    return out


# What model-signing 1.0.1 raises for a bundle it cannot use (read in its source, and met by fuzzing bundles:
# truncated, bit-flipped, fields of another type): ValueError (JSON, UTF-8, base64, media type, payload type,
# "Signature mismatch"), TypeError and IndexError (betterproto given another shape, no signature in the
# envelope), KeyError (a signed payload without a field) and cryptography's InvalidSignature.
def _bundle_errors() -> tuple[type[BaseException], ...]:
    from cryptography.exceptions import InvalidSignature

    return ValueError, TypeError, IndexError, KeyError, InvalidSignature


def _read_bundle(sig: Path) -> dict[str, Any]:
    """The signature read with a bound, and refused unless it is a JSON object: model-signing reads it whole and
    parses it with json, where a deeply nested file is a RecursionError."""
    data = read_bytes(sig, "signature", MAX_SIGNATURE_BYTES)
    try:
        bundle = parse_json(data.decode("utf-8"))
    except (ValueError, RecursionError):
        raise ArtifactMismatchError(f"{sig}: not a signature bundle (not JSON text)") from None
    if not isinstance(bundle, dict):
        raise ArtifactMismatchError(f"{sig}: not a signature bundle (JSON {type(bundle).__name__}, not an object)")
    return bundle


def _verification_material(key: Any) -> dict[str, Any]:
    """The ``verificationMaterial`` model-signing writes into a bundle signed with ``key``'s private half
    (sign_ec_key.py, Signer._get_verification_material; bytes fields are base64 in the bundle's JSON)."""
    from cryptography.hazmat.primitives import serialization

    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return {"publicKey": {"rawBytes": base64.b64encode(pem).decode("ascii"),
                          "keyDetails": _KEY_DETAILS[key.curve.name]}}


def verify_signature(artifact: str | Path, public_key: str | Path, signature: str | Path | None = None) -> str:
    """Check ``artifact``'s manifest and files, then its signature with ``public_key`` (PEM, elliptic curve, NIST
    P-256/P-384/P-521); ArtifactMismatchError (exit 3) when a file changed or the signature is missing, not by this
    key, or not of this manifest. Returns what was checked."""
    artifact, public_key = Path(artifact), Path(public_key)
    verifying = _model_signing().verifying
    key = check_public_key(public_key)
    checked = check_integrity(artifact)
    if checked.verified is None:
        raise InputFileError(f"{artifact}: no manifest beside it: nothing a signature could cover")
    sig = Path(signature) if signature is not None else signature_path(artifact)
    if not os.path.lexists(sig):
        raise ArtifactMismatchError(f"{artifact}: no signature ({sig.name} not found); sign it with edgedeploy sign")
    bundle = _read_bundle(sig)
    config = verifying.Config().use_elliptic_key_verifier(public_key=public_key)
    try:
        config.verify(manifest_path(artifact), sig)
    except _bundle_errors() as exc:
        raise ArtifactMismatchError(f"{artifact}: signature {sig.name} does not verify with {public_key.name} "
                                    f"({type(exc).__name__}: {_first_line(exc)})") from None
    # model-signing 1.0.1 ignores the key a bundle names (a TODO in sign_ec_key.py, Verifier._verify_bundle): a
    # bundle whose named key was changed, a quarter of its bytes, would still verify.
    if bundle.get("verificationMaterial") != _verification_material(key):
        raise ArtifactMismatchError(f"{artifact}: signature {sig.name} verifies with {public_key.name} but names "
                                    "another key (its verificationMaterial was changed)")
    return f"{sig.name} by {public_key.name} over the manifest, {len(checked.files)} file(s) match it"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
