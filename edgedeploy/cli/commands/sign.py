"""``edgedeploy sign``: an OpenSSF model-signing signature of an export, beside it."""

from __future__ import annotations

import os
from pathlib import Path

import click

from edgedeploy.cli.options import emit_json, json_option


@click.command()
@click.argument("artifact", type=click.Path(path_type=Path))
# Paths only: the key file is checked (a folder, a device, the wrong key type) by core.signing, in one line, exit 3.
@click.option("--key", "private_key", required=True, type=click.Path(path_type=Path),
              help="Private key to sign with: PEM, elliptic curve NIST P-256, P-384 or P-521 (what model-signing "
                   "signs with).")
@click.option("--password-env", default=None, metavar="VAR",
              help="Environment variable holding the password of an encrypted key (never on the command line).")
@json_option
def sign(as_json: bool, artifact: Path, private_key: Path, password_env: str | None) -> None:
    """Sign ARTIFACT (checked against its manifest first) with --key: writes ARTIFACT.sig (OpenSSF model-signing,
    Sigstore bundle format), which `edgedeploy verify --public-key` and `gate --public-key` check."""
    from edgedeploy.core.errors import ConfigError
    from edgedeploy.core.signing import sign_artifact

    password = None
    if password_env is not None:
        password = os.environ.get(password_env)
        if password is None:
            raise ConfigError(f"--password-env {password_env}: the variable is not set")
    out = sign_artifact(artifact, private_key, password)
    if as_json:
        emit_json({"artifact": str(artifact), "signature": str(out), "key": str(private_key)})
    else:
        click.echo(f"signed {artifact} -> {out}")
