"""The command line: parse options, call the library, render the result, map errors to exit codes.

Every command takes --json: exactly one JSON object on stdout (an ``error`` object
on failure), logs and progress on stderr.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from edgedeploy import __version__
from edgedeploy.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_TERMINATED, EdgeDeployError, Terminated
from edgedeploy.render import fmt, key_values, table

log = logging.getLogger("edgedeploy")


def _emit_json(obj: dict[str, Any]) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


class _Cli(click.Group):
    """Turns every failure into one line on stderr (and a JSON error object with --json)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            self._fail(ctx, "interrupted", EXIT_INTERRUPTED)
        except Terminated:
            self._fail(ctx, "terminated", EXIT_TERMINATED)
        except EdgeDeployError as exc:
            self._fail(ctx, str(exc), exc.exit_code)
        except Exception as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            self._fail(ctx, f"internal error: {exc.__class__.__name__}: {str(exc)[:300]} (rerun with --debug for the traceback)", EXIT_INTERNAL)

    @staticmethod
    def _fail(ctx: click.Context, message: str, code: int) -> None:
        message = " ".join(message.split())  # always a single line
        if ctx.obj and ctx.obj.get("debug"):
            import traceback

            traceback.print_exc()
        if ctx.obj and ctx.obj.get("json"):
            _emit_json({"error": message, "exit_code": code})
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


def _json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    def mark(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        ctx.ensure_object(dict)["json"] = value
        return value

    return click.option("--json", "as_json", is_flag=True, is_eager=True, callback=mark, expose_value=True,
                        help="Print one JSON object on stdout.")(f)


def _progress(total: int, desc: str) -> Any:
    from tqdm import tqdm

    # disable=None: no bar when stderr is not a terminal (CI logs stay clean).
    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr, disable=None, leave=False)


def _model_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options that say how to load a model: architecture (PyTorch) and preprocessing (no manifest)."""
    options = [
        click.option("--width", type=float, default=1.0, show_default=True, help="Width multiplier (PyTorch weights)."),
        click.option("--resolution", type=int, default=224, show_default=True, help="Input size (PyTorch weights)."),
        click.option("--num-classes", type=int, default=1000, show_default=True, help="Class count (PyTorch weights)."),
        click.option("--mean", type=float, nargs=3, default=None, help="Normalization mean (R G B), for models without a manifest."),
        click.option("--std", type=float, nargs=3, default=None, help="Normalization std (R G B), for models without a manifest."),
        click.option("--raw-pixels", is_flag=True, help="Feed raw 0-255 pixels (models with normalization folded in)."),
        click.option("--threads", type=int, default=None, help="Inference threads [default: the device's]."),
        click.option("--no-xnnpack", is_flag=True, help="LiteRT: run the builtin kernels without the XNNPACK delegate."),
        click.option("--inference-precision", type=click.Choice(["f32", "bf16", "f16", "auto"]), default="f32",
                     show_default=True, help="OpenVINO: CPU plugin precision (auto: the plugin's own choice)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _devices_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--devices", "devices_file", type=click.Path(dir_okay=False), default=None,
                        help="A YAML file of extra device profiles [default: $EDGEDEPLOY_DEVICES].")(f)


def _load_options(kw: dict[str, Any], threads: int) -> Any:
    from edgedeploy.runtimes import LoadOptions

    return LoadOptions(
        threads=threads, mean=kw["mean"], std=kw["std"], raw_pixels=kw["raw_pixels"],
        width=kw["width"], resolution=kw["resolution"], num_classes=kw["num_classes"], xnnpack=not kw["no_xnnpack"],
        inference_precision=kw["inference_precision"],
    )


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="edgedeploy")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-v info, -vv debug).")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, debug: bool) -> None:
    """Export MobileNetV2 to edge formats and prove it still works there."""
    ctx.ensure_object(dict)["debug"] = debug
    _setup_logging(verbose)


def _target_choices() -> list[str]:
    from edgedeploy.targets import target_names

    return target_names()


def _calib_method_choices() -> list[str]:
    from edgedeploy.targets import calib_method_names

    return calib_method_names()


@cli.command()
@click.option("--target", "target", required=True, type=click.Choice(_target_choices()), help="Artifact format.")
@click.option("--weights", default="sample", show_default=True,
              help="A checkpoint path, or: sample (shared data), imagenet (torchvision, downloads), random.")
@click.option("--width", type=float, default=1.0, show_default=True, help="Width multiplier, 0.35-1.4.")
@click.option("--resolution", type=int, default=224, show_default=True, help="Input size, a multiple of 32 in 96-512.")
@click.option("--num-classes", type=int, default=1000, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("artifacts"),
              show_default=True, help="Output folder.")
@click.option("--name", default=None, help="Artifact file stem [default: mobilenet_v2_<width>_<resolution>].")
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset.")
@click.option("--dynamic-batch", is_flag=True, help="Make the batch dimension dynamic (default: fixed batch 1).")
@click.option("--mean", type=float, nargs=3, default=None, help="Override the weights' normalization mean (R G B).")
@click.option("--std", type=float, nargs=3, default=None, help="Override the weights' normalization std (R G B).")
@click.option("--parity-data", type=click.Path(path_type=Path), default=None,
              help="Images for the parity check [default: the sample calib split].")
@click.option("--parity-images", type=click.IntRange(1, 10_000), default=32, show_default=True)
@click.option("--parity-atol", type=float, default=None, help="Max |logit diff| vs PyTorch [default: per target].")
@click.option("--parity-min-agreement", type=click.FloatRange(0, 100), default=None,
              help="Min top-1 agreement with PyTorch, percent [default: per target].")
@click.option("--threads", type=click.IntRange(1), default=None, help="Threads for the parity run.")
@click.option("--calib", "calib_dir", type=click.Path(path_type=Path), default=None,
              help="Calibration images for int8 targets: a folder or a calibration/*.json definition "
                   "[default: the sample calib split].")
@click.option("--calib-size", type=int, default=200, show_default=True, help="Calibration images to use.")
@click.option("--calib-seed", type=int, default=0, show_default=True, help="Seed of the class-stratified sample.")
@click.option("--io-dtype", type=click.Choice(["int8", "uint8", "float32"]), default=None,
              help="Input/output dtype of integer targets [default: int8]; uint8 takes raw 0-255 pixels.")
@click.option("--calib-method", type=click.Choice(_calib_method_choices()), default=None,
              help="Activation ranges: onnx-int8 (ONNX Runtime) minmax, percentile, entropy [default: minmax]; "
                   "openvino-int8 (NNCF) mean-minmax, minmax, mean-quantile, histogram [default: mean-minmax]; "
                   "tflite-int8 has only min/max.")
@click.option("--max-drop", type=float, default=None,
              help="openvino-int8: accuracy-controlled quantization, max top-1 drop in points on --val.")
@click.option("--val", "val_dir", type=click.Path(path_type=Path), default=None,
              help="Labeled images for --max-drop.")
@click.option("--keep-float", "keep_float", multiple=True, metavar="LAYER",
              help="int8 targets: keep this layer in float (repeatable; names from `edgedeploy diagnose`).")
@_json_option
def export(as_json: bool, target: str, width: float, resolution: int, num_classes: int, out_dir: Path, **kw: Any) -> None:
    """Export MobileNetV2 to TARGET, check parity with PyTorch, write artifact + manifest."""
    from edgedeploy.devices import get_device
    from edgedeploy.models import MobileNetV2Config
    from edgedeploy.pipeline import ExportRequest
    from edgedeploy.pipeline import export as run_export

    request = ExportRequest(
        target=target,
        config=MobileNetV2Config(width=width, resolution=resolution, num_classes=num_classes),
        weights=kw["weights"], out_dir=out_dir, name=kw["name"], opset=kw["opset"],
        dynamic_batch=kw["dynamic_batch"], mean=kw["mean"], std=kw["std"],
        parity_data=kw["parity_data"], parity_images=kw["parity_images"],
        parity_max_abs_diff=kw["parity_atol"], parity_min_agreement=kw["parity_min_agreement"],
        threads=kw["threads"] or get_device("cpu").default_threads(),
        calib_dir=kw["calib_dir"], calib_size=kw["calib_size"], calib_seed=kw["calib_seed"], io_dtype=kw["io_dtype"],
        calib_method=kw["calib_method"], max_drop=kw["max_drop"], val_dir=kw["val_dir"],
        keep_float=tuple(kw["keep_float"]),
    )
    result = run_export(request, on_step=lambda step: log.info("%s ...", step)).to_dict()
    if as_json:
        _emit_json(result)
        return
    parity = result["parity"]
    click.echo(f"exported {target} -> {result['path']}")
    click.echo(key_values([
        ("size", f"{result['size_bytes'] / 2**20:.2f} MiB"),
        ("sha256", result["sha256"]),
        ("onnx nodes", f"{result['onnx_nodes_before_simplify']} -> {result['onnx_nodes_after_simplify']} after onnxsim"),
        ("parity", f"max |diff| {parity['max_abs_diff']:.3g}, top-1 agreement {parity['top1_agreement']:.1f}% "
                   f"on {parity['images']} images"),
        ("manifest", result["manifest"]),
        *([("log", result["log"])] if result.get("log") else []),
        ("time", f"{result['seconds']:.1f} s"),
    ]))


@cli.command("eval")
@click.argument("model")
@click.option("--data", type=click.Path(path_type=Path), required=True, help="Image folder (<wnid>/<image> layout).")
@click.option("--synsets", type=click.Path(path_type=Path), default=None,
              help="wnid list giving class indices [default: synsets.txt beside --data, else sorted folders].")
@click.option("--limit", type=click.IntRange(1), default=None, help="Evaluate the first N images only.")
@click.option("--reference", default=None, help="Compare with this model: agreement, KL, cosine.")
@click.option("--batch-size", type=click.IntRange(1, 1024), default=16, show_default=True)
@click.option("--device", default="cpu", show_default=True,
              help="Where MODEL runs: cpu, gpu, or arm64-emu (LiteRT's aarch64 build under qemu); "
                   "--reference always runs on this host's CPU.")
@_devices_option
@_model_options
@_json_option
def eval_cmd(as_json: bool, model: str, data: Path, synsets: Path | None, limit: int | None, reference: str | None,
             batch_size: int, device: str, devices_file: str | None, **kw: Any) -> None:
    """Accuracy of MODEL (a .onnx/.pth file or weights name) on an image folder."""
    from edgedeploy.datasets import ImageFolder
    from edgedeploy.devices import get_device
    from edgedeploy.evaluate import evaluate
    from edgedeploy.measure import eval_runner
    from edgedeploy.runtimes import load_runner

    dev = get_device(device, devices_file)
    options = _load_options(kw, kw["threads"] or dev.default_threads())
    runner = eval_runner(model, dev, options)
    ref_runner = load_runner(reference, _load_options(kw, kw["threads"] or get_device("cpu").default_threads())) \
        if reference else None
    dataset = ImageFolder.open(data, synsets).subset(limit)
    with _progress(len(dataset), "eval") as bar:
        result = evaluate(runner, dataset, ref_runner, batch_size, on_progress=bar.update)
    out = {"model": model, "runtime": runner.runtime, "device": dev.name, **result.to_dict(), "data": str(data),
           "classes_from": dataset.class_source, "threads": options.threads, "execution": runner.execution(),
           "versions": runner.versions()}
    if reference:
        out["reference"] = reference
    if as_json:
        _emit_json(out)
        return
    rows = [("model", f"{model} ({runner.runtime})"), ("images", f"{result.n} ({result.skipped} skipped)"),
            ("top-1", f"{fmt(result.top1)} %"), ("top-5", f"{fmt(result.top5)} %")]
    if reference:
        rows += [("reference", reference), ("agreement", f"{fmt(result.agreement)} %"), ("mean KL", result.kl),
                 ("mean cosine", result.cosine), ("max |diff|", result.max_abs_diff)]
    rows.append(("time", f"{result.seconds:.1f} s"))
    click.echo(key_values(rows))


@cli.command()
@click.argument("model")
@click.option("--reference", required=True, help="The float export of the same model and format (e.g. tflite-fp32).")
@click.option("--data", type=click.Path(path_type=Path), required=True, help="Real images to compare activations on.")
@click.option("--images", type=click.IntRange(1, 10_000), default=32, show_default=True,
              help="Images to use (a seeded sample of --data).")
@click.option("--suggest", type=click.IntRange(0, 100), default=3, show_default=True,
              help="How many layers to suggest keeping in float.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="PNG of SQNR and RMSE per layer [default: <model stem>.layers.png here].")
@click.option("--threads", type=click.IntRange(1), default=None, help="Threads for the output comparison.")
@_json_option
def diagnose(as_json: bool, model: str, reference: str, data: Path, images: int, suggest: int, plot: Path | None,
             threads: int | None) -> None:
    """Per-layer int8 error of MODEL against its float REFERENCE, and the layers to keep in float."""
    from edgedeploy.devices import get_device
    from edgedeploy.diagnose import diagnose as run_diagnose
    from edgedeploy.diagnose import plot_layer_errors

    with _progress(images, "diagnose") as bar:
        result = run_diagnose(model, reference, data, images, suggest,
                              threads or get_device("cpu").default_threads(), on_progress=bar.update)
    result["plot"] = str(plot_layer_errors(result, plot or Path(f"{Path(model).stem}.layers.png")))
    if as_json:
        _emit_json(result)
        return
    def num(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    click.echo(table(["#", "layer", "op", "SQNR dB", "RMSE steps", "max |err|", "weights dB", "range dB", "clipped %",
                      "local noise"],
                     [[e["index"], e["name"], e["op"], num(e["sqnr_db"], ".1f"), num(e["rmse_steps"], ".2f"),
                       num(e["max_abs_error"], ".3g"), num(e["weights_sqnr_db"], ".1f"), num(e["range_sqnr_db"], ".1f"),
                       num(e["clipped_pct"], ".2f"), num(e["local_noise"], ".4f")] for e in result["layers"]]))
    out = result["output"]
    suggestion = result["suggestions"]
    click.echo(key_values([
        ("images", result["images"]),
        ("output", f"top-1 agreement {fmt(out['agreement'])} % with the reference, max |diff| {out['max_abs_diff']:.3g}"),
        ("layers", f"{result['layers_compared']} compared, {result['layers_unmatched']} without a float counterpart"),
        ("diagnosis", result["diagnosis"]),
        ("suggestion", f"export --target {suggestion['target']} {suggestion['export_option']}"
         if suggestion["layers"] else "none"),
        ("plot", result["plot"]),
    ]))


@cli.command()
@click.argument("model")
@click.option("--device", default="cpu", show_default=True, help="Where to run: see `edgedeploy devices`.")
@click.option("--runs", type=int, default=100, show_default=True, help="Timed runs.")
@click.option("--warmup", type=int, default=10, show_default=True, help="Untimed runs first.")
@click.option("--delegate", type=click.Choice(["xnnpack", "cpu", "gpu", "nnapi"]), default=None,
              help="LiteRT delegate where the device offers it [default: xnnpack].")
@click.option("--benchmark-binary", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Remote devices: LiteRT's benchmark_model for the device [default: the cached download].")
@click.option("--op-profiling", is_flag=True, help="Remote devices: per-op timings and where each op ran.")
@_devices_option
@_model_options
@_json_option
def bench(as_json: bool, model: str, device: str, runs: int, warmup: int, delegate: str | None,
          benchmark_binary: Path | None, op_profiling: bool, devices_file: str | None, **kw: Any) -> None:
    """Latency of MODEL on a device: percentiles, throughput, memory, and how it really ran."""
    from edgedeploy.devices import get_device
    from edgedeploy.measure import bench_on_device

    dev = get_device(device, devices_file)
    options = _load_options(kw, kw["threads"] or dev.default_threads())
    with _progress(runs if dev.in_process else 0, "bench") as bar:
        result = bench_on_device(model, dev, options, runs, warmup, delegate, benchmark_binary, op_profiling,
                                 on_progress=bar.update)
    samples = result.pop("samples_ms", None)
    out = {"model": model, "runtime": _runtime_name(model), "device": dev.name, **result,
           "host": dev.describe_host() if dev.in_process else None}
    if as_json:
        _emit_json(out)
        return
    lat = out["latency_ms"]
    execution = ", ".join(f"{k} {v}" for k, v in (out.get("execution") or {}).items())
    click.echo(key_values([("model", f"{model} ({out['runtime']})"), ("device", f"{dev.name}, {out['threads']} threads"),
                           *([("execution", execution)] if execution else []),
                           ("runs", f"{out['runs']} (+{warmup} warm-up)")]))
    if samples is not None:
        click.echo(table(["latency ms", "p50", "p90", "p99", "mean", "std", "min", "max"],
                         [["", lat["p50"], lat["p90"], lat["p99"], lat["mean"], lat["std"], lat["min"], lat["max"]]]))
        click.echo(key_values([("throughput", f"{out['throughput_ips']:.1f} img/s"),
                               ("peak RSS", f"{out['peak_rss_mb']:.0f} MiB")]))
        return
    if out.get("emulated"):
        click.echo(table(["EMULATED latency ms (not device latency)", "p50", "p90", "mean", "min", "max"],
                         [["", lat["p50"], lat["p90"], lat["mean"], lat["min"], lat["max"]]]))
        return
    click.echo(table(["latency ms", "median", "mean", "std", "min", "max", "first", "init"],
                     [["", lat["median"], lat["mean"], lat["std"], lat["min"], lat["max"], out["first_inference_ms"],
                       out["init_ms"]]]))
    coverage = out["delegate"]
    if coverage.get("status") == "partial":
        taken = (f"{coverage['nodes_delegated']} of {coverage['nodes_total']} nodes" if coverage.get("nodes_total")
                 else f"{coverage['kernels']} delegate kernels")
        click.echo(f"WARNING: the {coverage['requested']} delegate took only {taken}; the rest ran on the CPU"
                   + (f": {', '.join(coverage['cpu_ops'])}" if coverage.get("cpu_ops") else ""), err=True)
    mem = out["memory_mb"]
    click.echo(key_values([("delegate", f"{coverage['requested']}: {coverage.get('status')}"),
                           ("memory", f"init {fmt(mem['init'])} MiB, overall {fmt(mem['overall'])} MiB, "
                                      f"peak {fmt(mem['peak'])} MiB")]))


def _runtime_name(model: str) -> str:
    from edgedeploy.runtimes import runtime_for

    return runtime_for(model).name


@cli.command()
@click.argument("model")
@_model_options
@_json_option
def inspect(as_json: bool, model: str, **kw: Any) -> None:
    """Describe MODEL: parameters and MACs (PyTorch) or graph, IO and ops (ONNX)."""
    from edgedeploy.runtimes import inspect_model

    info = inspect_model(model, _load_options(kw, kw["threads"] or 1))
    if as_json:
        _emit_json(info)
        return
    scalars = [(k, v) for k, v in info.items() if not isinstance(v, (dict, list)) and v is not None]
    if "macs" in info:
        scalars.append(("MACs (millions)", round(info["macs"] / 1e6, 1)))
    click.echo(key_values(scalars))
    for key in ("inputs", "outputs"):
        for v in info.get(key, []):
            click.echo(f"{key[:-1]:<8}{v['name']}  {v['shape']}  {v['dtype']}")
    if info.get("ops"):
        click.echo(table(["op", "count"], list(info["ops"].items())))


@cli.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Definition file to write (.json).")
@click.option("--size", type=int, default=200, show_default=True, help="Images to select.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the class-stratified selection.")
@click.option("--name", default=None, help="Set name [default: the file stem].")
@_json_option
def calibration(as_json: bool, source: Path, output: Path, size: int, seed: int, name: str | None) -> None:
    """Pin a calibration set: select images from SOURCE and write a definition (paths + sha256)."""
    from edgedeploy.calibration import write_definition

    if output.suffix != ".json":
        raise click.BadParameter("the definition file must end in .json", param_hint="--output")
    out = write_definition(source, output, size, seed, name)
    if as_json:
        _emit_json(out)
        return
    click.echo(f"wrote {out['path']}: {out['images']} images from {out['classes']} folders under {out['root']}")


def _split_targets(values: tuple[str, ...]) -> list[str] | None:
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    return names or None


def _recipe_run_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Output folder [default: edgedeploy-out/<recipe name>]."),
        click.option("--targets", "only", multiple=True,
                     help="Only these recipe targets (comma-separated or repeated) [default: all]."),
        click.option("--force", is_flag=True, help="Rebuild and re-evaluate even when the cache has the result."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _run_recipe(recipe_path: Path, out_dir: Path | None, only: tuple[str, ...], force: bool) -> tuple[Any, dict[str, Any], Path]:
    """Load and run a recipe, with one progress line per stage on stderr; writes results and report."""
    from edgedeploy.recipe import load_recipe
    from edgedeploy.workflow import run_recipe

    recipe = load_recipe(recipe_path)
    out = out_dir or Path("edgedeploy-out") / recipe.name

    def show(event: Any) -> None:
        detail = f" ({event.detail})" if event.detail else ""
        click.echo(f"[{event.index}/{event.total}] {event.target}: {event.stage}{detail}", err=True)

    results = run_recipe(recipe, out, _split_targets(only), force, on_event=show)
    return recipe, results, out


def _without_samples(results: dict[str, Any]) -> dict[str, Any]:
    """results.json minus the per-run latency samples (kept in the file, too long for a terminal)."""
    def strip(entry: dict[str, Any]) -> dict[str, Any]:
        if "latency" not in entry:
            return entry
        return {**entry, "latency": {d: {k: v for k, v in lat.items() if k != "samples_ms"}
                                     for d, lat in entry["latency"].items()}}

    return {**results, "reference": strip(results["reference"]),
            "targets": {n: strip(t) for n, t in results["targets"].items()}}


@cli.command("run")
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
@_recipe_run_options
@_json_option
@click.pass_context
def run_cmd(ctx: click.Context, as_json: bool, recipe: Path, out_dir: Path | None, only: tuple[str, ...],
            force: bool) -> None:
    """Run RECIPE: export every target, evaluate, bench; write results.json and a report."""
    from edgedeploy.errors import EXIT_INCOMPLETE
    from edgedeploy.report import report_rows, write_report, COLUMNS
    from edgedeploy.workflow import RESULTS_FILE

    _, results, out = _run_recipe(recipe, out_dir, only, force)
    paths = write_report(results, out)
    summary = {**_without_samples(results), "results_file": str(out / RESULTS_FILE),
               "report": {k: str(v) for k, v in paths.items()}}
    if as_json:
        _emit_json(summary)
    else:
        click.echo(table(COLUMNS, report_rows(results)))
        click.echo(key_values([("results", summary["results_file"]), ("report", str(paths["html"])),
                               ("time", f"{results['seconds']:.1f} s")]))
    if results["failed"]:
        for name in results["failed"]:
            t = results["targets"][name]
            click.echo(f"error: {name} failed at {t['stage']}: {t['error']}", err=True)
        ctx.exit(EXIT_INCOMPLETE)


@cli.command()
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--results", "results_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Check this results.json instead of running the recipe first.")
@click.option("--baseline", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A previous results.json: no target's top-1 may fall more than max_top1_regression below it.")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the verdicts as JUnit XML (one test case per target and check).")
@_recipe_run_options
@_json_option
@click.pass_context
def gate(ctx: click.Context, as_json: bool, recipe: Path, results_file: Path | None, baseline: Path | None,
         junit: Path | None, out_dir: Path | None, only: tuple[str, ...], force: bool) -> None:
    """Fail (exit 1) when a target breaks RECIPE's thresholds or regresses against --baseline.

    Exit 0: every check passed. 1: a regression. 6: a target failed to build or measure,
    or is missing from the results (the gate fails closed). 2/3: bad recipe or files.
    """
    from edgedeploy.gate import check_results, read_results, write_junit
    from edgedeploy.recipe import load_recipe

    if results_file is not None:
        if force or out_dir is not None:
            raise click.UsageError("--force and --out apply only when the gate runs the recipe (no --results)")
        loaded = load_recipe(recipe)
        results = read_results(results_file)
    else:
        from edgedeploy.report import write_report
        from edgedeploy.workflow import RESULTS_FILE

        loaded, results, out = _run_recipe(recipe, out_dir, only, force)
        write_report(results, out)
        results_file = out / RESULTS_FILE
    report = check_results(loaded, results, read_results(baseline) if baseline else None, _split_targets(only))
    if junit is not None:
        write_junit(report, junit)
    verdict = report.to_dict()
    if as_json:
        _emit_json({**verdict, "results_file": str(results_file), "baseline": str(baseline) if baseline else None,
                    "junit": str(junit) if junit else None})
    else:
        click.echo(table(["target", "check", "value", "limit", "verdict", "detail"],
                         [[c.target, c.name, c.value, c.limit, c.status.upper(), c.message] for c in report.checks]))
        counts = verdict["counts"]
        word = "PASS" if report.passed else "REGRESSION" if report.exit_code == 1 else "ERROR"
        click.echo(f"gate {word}: {counts['pass']} passed, {counts['fail']} failed, {counts['error']} errors, "
                   f"{counts['skip']} skipped ({results_file})")
    if not report.passed:
        bad = [f"{c.target} {c.name}: {c.message}" for c in report.checks if c.status in ("fail", "error")]
        click.echo(f"error: gate failed: {'; '.join(bad)}", err=True)
        ctx.exit(report.exit_code)


@cli.command()
@click.argument("results_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write report.md/.html and plots/ [default: beside RESULTS_FILE].")
@_json_option
def report(as_json: bool, results_file: Path, out_dir: Path | None) -> None:
    """Rebuild the Markdown/HTML report of a run from its results.json."""
    from edgedeploy.gate import read_results
    from edgedeploy.report import write_report

    paths = write_report(read_results(results_file), out_dir or results_file.parent)
    if as_json:
        _emit_json({k: str(v) for k, v in paths.items()})
        return
    click.echo(key_values([(k, str(v)) for k, v in paths.items()]))


@cli.group("devices", invoke_without_command=True)
@_devices_option
@_json_option
@click.pass_context
def devices_cmd(ctx: click.Context, as_json: bool, devices_file: str | None) -> None:
    """List device profiles and whether each is reachable now (and why not)."""
    if ctx.invoked_subcommand is not None:
        return
    from edgedeploy.devices import load_devices
    from edgedeploy.devices.probe import probe

    rows = []
    for dev in load_devices(devices_file).values():
        state = probe(dev)
        rows.append({"name": dev.name, "transport": dev.transport, "abi": dev.abi, "runtimes": dev.runtimes,
                     "delegates": dev.delegates, "reachable": state.reachable, "detail": state.detail,
                     "description": dev.description})
    if as_json:
        _emit_json({"devices": rows})
        return
    click.echo(table(["device", "transport", "runtimes", "reachable", "detail"],
                     [[r["name"], r["transport"], ",".join(r["runtimes"]), "yes" if r["reachable"] else "no",
                       r["detail"]] for r in rows]))


@devices_cmd.command("setup")
@click.argument("name")
@_devices_option
@_json_option
def devices_setup(as_json: bool, name: str, devices_file: str | None) -> None:
    """Prepare device NAME: build the arm64-emu root, or download benchmark_model for an adb/ssh device."""
    from edgedeploy.devices import get_device

    dev = get_device(name, devices_file)
    if dev.in_process:
        raise click.UsageError(f"device {name} runs in this process: nothing to set up")
    if dev.transport == "qemu":
        from edgedeploy.devices.emulator import setup_emulator

        out = setup_emulator(on_step=lambda step: click.echo(f"{name}: {step} ...", err=True))
    else:
        from edgedeploy.devices.remote import download_benchmark_binary

        out = {"benchmark_model": str(download_benchmark_binary(dev))}
    if as_json:
        _emit_json({"device": name, **out})
        return
    click.echo(key_values([(k, v if not isinstance(v, list) else ", ".join(v)) for k, v in out.items()]))


@cli.command("list")
@_json_option
def list_cmd(as_json: bool) -> None:
    """List export targets, runtimes and devices."""
    from edgedeploy.devices import DEVICES
    from edgedeploy.runtimes import RUNTIMES
    from edgedeploy.targets import TARGETS

    out = {
        "targets": {t.name: {"runtime": t.runtime, "suffix": t.file_suffix, "description": t.description} for t in TARGETS.values()},
        "runtimes": {r.name: {"suffixes": list(r.suffixes), "description": r.description} for r in RUNTIMES.values()},
        "devices": {d.name: {"transport": d.transport, "description": d.description} for d in DEVICES.values()},
    }
    if as_json:
        _emit_json(out)
        return
    click.echo(table(["target", "runtime", "file", "description"],
                     [[n, t["runtime"], t["suffix"], t["description"]] for n, t in out["targets"].items()]))
    click.echo()
    click.echo(table(["runtime", "files", "description"],
                     [[n, " ".join(r["suffixes"]), r["description"]] for n, r in out["runtimes"].items()]))
    click.echo()
    click.echo(table(["device", "description"], [[n, d["description"]] for n, d in out["devices"].items()]))


def _raise_terminated(_signum: int, _frame: Any) -> None:
    raise Terminated()


def main() -> None:
    # SIGTERM (CI cancelling a job, `timeout`, docker stop) unwinds like Ctrl-C: no staging
    # folder, half-written artifact or redirected descriptor is left behind.
    signal.signal(signal.SIGTERM, _raise_terminated)
    cli(prog_name="edgedeploy")


