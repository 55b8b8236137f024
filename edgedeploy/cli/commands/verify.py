"""``edgedeploy verify``: an artifact re-proven from its files (hashes, precision, IO, parity)."""

from __future__ import annotations

from pathlib import Path

import click

from edgedeploy.cli import ranges
from edgedeploy.cli.options import emit_json, json_option
from edgedeploy.cli.render import table


@click.command()
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Images to re-run parity on against the PyTorch reference [default: parity is not re-run].")
@click.option("--reference", default=None,
              help="PyTorch weights for parity [default: the weights the manifest names].")
@click.option("--images", type=ranges.PARITY_IMAGES, default=None,
              help="Parity images [default: as many as at export].")
@click.option("--threads", type=ranges.THREADS, default=None, help="Threads for the parity run.")
# Paths only: the key and signature files are checked by core.signing (one line, exit 3).
@click.option("--public-key", type=click.Path(path_type=Path), default=None,
              help="Also check the artifact's signature (edgedeploy sign) with this public key (PEM, elliptic curve "
                   "NIST P-256, P-384 or P-521).")
@click.option("--signature", type=click.Path(path_type=Path), default=None,
              help="The signature file [default: ARTIFACT.sig]; needs --public-key.")
@json_option
@click.pass_context
def verify(ctx: click.Context, as_json: bool, artifact: Path, data: Path | None, reference: str | None,
           images: int | None, threads: int | None, public_key: Path | None, signature: Path | None) -> None:
    """Check ARTIFACT against its manifest: file hashes, (with --public-key) its signature, the precision proof,
    the IO spec and (with --data) parity with PyTorch. Exit 0 only when every check passes: 3 a file changed, 4 a check failed."""
    from edgedeploy.devices import default_threads
    from edgedeploy.exporter.verify import verify_export

    if data is None and (reference is not None or images is not None):
        raise click.UsageError("--reference and --images apply to the parity check, which needs --data")
    if signature is not None and public_key is None:
        raise click.UsageError("--signature is checked with --public-key")
    report = verify_export(artifact, data, reference, images, threads or default_threads(), public_key, signature)
    if as_json:
        emit_json(report.to_dict())
    else:
        click.echo(table(["check", "result", "detail"], [[c.name, c.status.upper(), c.detail] for c in report.checks]))
        click.echo(f"verify {'PASS' if report.passed else 'FAIL'}: {artifact} ({report.target})")
    if not report.passed:
        failed = [f"{c.name}: {c.detail}" for c in report.checks if c.status == "fail"]
        click.echo(f"error: verify failed: {'; '.join(failed)}", err=True)
        ctx.exit(report.exit_code)
