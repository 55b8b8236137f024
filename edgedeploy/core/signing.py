"""Signing artifacts with the OpenSSF model-signing format (PyPI ``model-signing``; key-based signing works
offline). The signature covers the artifact's manifest, and the manifest covers every file of the artifact by
sha256 and itself by its content digest: verifying the signature and then the manifest proves every byte that
was exported. The signature is written beside the artifact, ``<artifact>.sig`` (a Sigstore bundle)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgedeploy.core.artifacts import atomic_path
from edgedeploy.core.errors import ArtifactMismatchError, DependencyError, InputFileError
from edgedeploy.core.integrity import check_integrity
from edgedeploy.core.manifest import manifest_path

__all__ = ["SIGNATURE_SUFFIX", "signature_path", "sign_artifact", "verify_signature"]

SIGNATURE_SUFFIX = ".sig"


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


def _key(path: Path, what: str) -> Path:
    if not path.is_file():
        raise InputFileError(f"{path}: {what} not found")
    return path


def sign_artifact(artifact: str | Path, private_key: str | Path, password: str | None = None) -> Path:
    """Sign ``artifact`` (checked against its manifest first: only an intact export is signed) with an elliptic
    curve private key (PEM); returns the signature's path."""
    artifact = Path(artifact)
    if check_integrity(artifact).verified is None:
        raise InputFileError(f"{artifact}: no manifest beside it: only edgedeploy exports are signed")
    config_class = _offline_signing_config(_model_signing())
    try:
        config = config_class().use_elliptic_key_signer(private_key=_key(Path(private_key), "private key"),
                                                        password=password)
    except (ValueError, TypeError) as exc:  # not a PEM key, a wrong password, an unsupported curve
        raise InputFileError(f"{private_key}: not a usable elliptic-curve private key ({_first_line(exc)})") from None
    out = signature_path(artifact)
    with atomic_path(out) as tmp:
        config.sign(manifest_path(artifact), tmp)
    return out


def verify_signature(artifact: str | Path, public_key: str | Path, signature: str | Path | None = None) -> str:
    """Check ``artifact``'s signature with ``public_key``, then its manifest and files; ArtifactMismatchError
    (exit 3) when the signature is missing, not by this key, or not of this manifest. Returns what was checked."""
    artifact = Path(artifact)
    sig = Path(signature) if signature is not None else signature_path(artifact)
    if not sig.is_file():
        raise ArtifactMismatchError(f"{artifact}: no signature ({sig.name} not found); sign it with edgedeploy sign")
    verifying = _model_signing().verifying
    try:
        config = verifying.Config().use_elliptic_key_verifier(public_key=_key(Path(public_key), "public key"))
    except (ValueError, TypeError) as exc:
        raise InputFileError(f"{public_key}: not a usable elliptic-curve public key ({_first_line(exc)})") from None
    try:
        config.verify(manifest_path(artifact), sig)
    except Exception as exc:  # model-signing raises ValueError, or the crypto library's InvalidSignature
        raise ArtifactMismatchError(f"{artifact}: signature {sig.name} does not verify with {Path(public_key).name} "
                                    f"({type(exc).__name__}: {_first_line(exc)})") from None
    checked = check_integrity(artifact)
    return f"{sig.name} by {Path(public_key).name} over the manifest, {len(checked.files)} file(s) match it"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
