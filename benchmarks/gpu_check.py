"""The GPU check: LiteRT's GPU accelerator and ONNX Runtime's WebGPU provider on an NVIDIA machine with no
network, side by side with the CPU, and a PyTorch CUDA float reference (labelled as such: not a delegate).

Three steps (docs/gpu.md):

    # here (PyPI, Debian's mirror and the shared data reachable): one bundle folder per run, each under 64 MiB
    python benchmarks/gpu_check.py prepare --out .gpu            # .gpu/tflite, .gpu/litert, .gpu/onnx
    # on the GPU machine, from the repository root, once per bundle (each well under 5 minutes):
    python3 benchmarks/gpu_check.py run .gpu/tflite --out "$OUT"
    # here: the runs' JSON files into benchmarks/GPU.md
    python benchmarks/gpu_check.py report RESULTS.json... --write benchmarks/GPU.md

A bundle holds what the machine lacks: the wheels (cp312: ai-edge-litert, onnxruntime-ep-webgpu, pydantic), the
Vulkan loader (Debian's libvulkan1 .deb; the NVIDIA driver brings its ICD), the artifacts with their manifests,
a slice of the val images and, for the onnx bundle, the sample weights. Three bundles because one does not fit:
five fp32/fp16/int8 MobileNetV2 artifacts are 53 MB and the wheels 32 MB.

``run`` never reports a CPU-only adapter as a GPU (it refuses unless --software, which the local dry run of this
script uses on SwiftShader), and refuses CPU fallback (each artifact's row says what the accelerator refused).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Each bundle: the targets it carries and the wheels they need (pydantic: edgedeploy's own import).
BUNDLES: dict[str, dict[str, Any]] = {
    "tflite": {"targets": ["tflite-fp32", "tflite-fp16", "tflite-int8"], "wheels": ["ai-edge-litert==2.3.0"]},
    "litert": {"targets": ["litert-fp32"], "wheels": ["ai-edge-litert==2.3.0"]},
    "onnx": {"targets": ["onnx"], "wheels": ["onnxruntime-ep-webgpu==0.4.0"], "weights": True},
}
COMMON_WHEELS = ["pydantic==2.14.4", "pydantic-core==2.50.5", "annotated-types==0.8.0", "typing-inspection==0.4.5",
                 "backports.strenum==1.2.8"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
BUNDLE_LIMIT = 64 * 2**20 - 4 * 2**20  # the device tool's 64 MiB, less the repository's own files
NVIDIA_ICDS = ("/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json", "/usr/share/vulkan/icd.d/nvidia_icd.json",
               "/etc/vulkan/icd.d/nvidia_icd.json")


# ---------------------------------------------------------------- prepare (here)

def prepare(out: Path, images: int) -> None:
    from edgedeploy.core.sample_data import SAMPLE_WEIGHTS, SYNSETS, VAL_DIR, data_root
    from edgedeploy.exporter.pipeline import ExportRequest, export

    data = data_root()
    for name, bundle in BUNDLES.items():
        folder = out / name
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "wheels").mkdir(parents=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                        "--python-version", "3.12", "--implementation", "cp",
                        *[a for p in PLATFORMS for a in ("--platform", p)], "-d", str(folder / "wheels"),
                        *bundle["wheels"], *COMMON_WHEELS], check=True)
        subprocess.run(["apt-get", "download", "-q", "libvulkan1"], cwd=folder, check=True)
        for target in bundle["targets"]:
            result = export(ExportRequest(target=target, out_dir=folder / "artifacts", threads=2))
            print(f"{name}: {target} {Path(result.path).name} {Path(result.path).stat().st_size / 2**20:.1f} MiB",
                  file=sys.stderr)
        for log in (folder / "artifacts").glob("*.log"):
            log.unlink()
        val = folder / "data" / VAL_DIR
        for picked in sorted(p for p in (data / VAL_DIR).rglob("*") if p.is_file())[::max(1, 600 // images)][:images]:
            (val / picked.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy2(picked, val / picked.parent.name / picked.name)
        shutil.copy2(data / SYNSETS, folder / "data" / SYNSETS)
        if bundle.get("weights"):
            shutil.copy2(data / SAMPLE_WEIGHTS, folder / "data" / SAMPLE_WEIGHTS)
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        print(f"{folder}: {size / 2**20:.1f} MiB", file=sys.stderr)
        if size > BUNDLE_LIMIT:
            raise SystemExit(f"{folder} is {size / 2**20:.1f} MiB: over the {BUNDLE_LIMIT / 2**20:.0f} MiB a run "
                             "carries")


# ---------------------------------------------------------------- run (on the GPU machine)

def _install(bundle: Path) -> None:
    """The bundle's wheels into /tmp/site and its Vulkan loader into / (dpkg -x, as the device README says)."""
    site = Path("/tmp/gpu-check-site")
    wheels = sorted((bundle / "wheels").glob("*.whl"))
    if wheels:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--upgrade", "--target", str(site), *map(str, wheels)], check=True)
        sys.path.insert(0, str(site))
    debs = sorted(bundle.glob("*.deb"))
    if debs and os.geteuid() == 0 and not any(Path(d, "libvulkan.so.1").exists() for d in ("/usr/lib/x86_64-linux-gnu",
                                                                                          "/lib/x86_64-linux-gnu")):
        for deb in debs:
            subprocess.run(["dpkg", "-x", str(deb), "/"], check=True)
        subprocess.run(["ldconfig"], check=True)
    icd = next((p for p in NVIDIA_ICDS if Path(p).is_file()), None)
    if icd and "VK_ICD_FILENAMES" not in os.environ:
        os.environ.setdefault("VK_DRIVER_FILES", icd)


def _machine() -> dict[str, Any]:
    from edgedeploy.core.vulkan import vulkan_adapters

    gpu = None
    if shutil.which("nvidia-smi"):
        done = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                              capture_output=True, text=True, check=False)
        gpu = done.stdout.strip() or done.stderr.strip()
    return {"gpu": gpu, "vulkan": vulkan_adapters().to_dict(), "cpu": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version()}


def _timings(runner: Any, runs: int, warmup: int) -> dict[str, float]:
    from edgedeploy.measure.bench import benchmark

    timed = benchmark(runner, runs=runs, warmup=warmup)
    return {k: round(timed.latency_ms[k], 3) for k in ("p50", "p90")}


def _artifact_row(path: Path, dataset: Any, runs: int) -> list[dict[str, Any]]:
    """The artifact on the CPU and on the GPU (default precision, and fp32 enforced for LiteRT)."""
    from edgedeploy.core.errors import EdgeDeployError
    from edgedeploy.measure.evaluate import evaluate
    from edgedeploy.runtimes import LoadOptions, load_runner

    threads = os.cpu_count() or 1
    cpu = load_runner(str(path), LoadOptions(threads=threads))
    cpu_eval = evaluate(cpu, dataset)
    rows = [{"artifact": path.name, "where": "cpu", "execution": cpu.execution(), "top1": cpu_eval.metrics["top1"],
             "latency_ms": _timings(cpu, runs, 10), "threads": threads}]
    precisions = ("fp16", "fp32") if path.suffix == ".tflite" else ("fp16",)
    for precision in precisions:
        try:
            gpu = load_runner(str(path), LoadOptions(threads=threads, accelerator="gpu", gpu_precision=precision))
            result = evaluate(gpu, dataset, reference=cpu)
            rows.append({"artifact": path.name, "where": "gpu",
                         "gpu_precision": precision if path.suffix == ".tflite" else "the model's",
                         "execution": gpu.execution(), "top1": result.metrics["top1"], "agreement": result.agreement,
                         "max_abs_diff": result.max_abs_diff, "latency_ms": _timings(gpu, runs, 20)})
        except EdgeDeployError as exc:  # refused: no adapter, or ops the GPU has no kernel for
            rows.append({"artifact": path.name, "where": "gpu", "gpu_precision": precision,
                         "refused": " ".join(str(exc).split()), "exit_code": exc.exit_code})
    return rows


def _torch_cuda_row(dataset: Any, runs: int) -> dict[str, Any]:
    """PyTorch's float model on CUDA (input copied in and scores copied out, as the delegates' rows): a reference for
    what this GPU can do, not a delegate."""
    import torch

    from edgedeploy.measure.evaluate import evaluate
    from edgedeploy.runtimes import LoadOptions, Runner, load_runner

    name = "PyTorch float (sample weights), CUDA eager: a reference, not a delegate"
    if not torch.cuda.is_available():
        return {"artifact": name, "where": "cuda", "refused": "torch sees no CUDA device"}
    cpu = load_runner("sample", LoadOptions(threads=os.cpu_count() or 1))

    class CudaRunner(Runner):
        runtime, source, batch_size, io = "torch", "sample", None, cpu.io
        model = cpu.model.eval().cuda()

        def infer(self, tensor: Any) -> dict[str, Any]:
            with torch.inference_mode():
                return {self.io.output.name: self.model(torch.from_numpy(tensor).cuda()).cpu().numpy()}

        def versions(self) -> dict[str, str]:
            return {"torch": torch.__version__}

    cuda = CudaRunner()
    result = evaluate(cuda, dataset, reference=cpu)
    return {"artifact": name, "where": f"cuda ({torch.cuda.get_device_name()})", "top1": result.metrics["top1"],
            "agreement": result.agreement, "max_abs_diff": result.max_abs_diff,
            "latency_ms": _timings(cuda, runs, 20)}


def run(bundle: Path, out: Path, runs: int, software: bool, install: bool = True) -> Path:
    if install:
        _install(bundle)
    os.environ["EDGEDEPLOY_DATA"] = str((bundle / "data").resolve())
    if software:
        os.environ["EDGEDEPLOY_SOFTWARE_GPU"] = "1"
    sys.path.insert(0, str(ROOT))
    from importlib import metadata

    from edgedeploy.core.sample_data import SYNSETS, VAL_DIR
    from edgedeploy.data.datasets import ImageFolder

    started = time.perf_counter()
    dataset = ImageFolder.open(bundle / "data" / VAL_DIR, synsets=bundle / "data" / SYNSETS)
    rows: list[dict[str, Any]] = []
    for path in sorted((bundle / "artifacts").glob("*")):
        if path.suffix in (".tflite", ".onnx"):
            rows += _artifact_row(path, dataset, runs)
    if (bundle / "data" / "mobilenet_v2_imagenet.pth").is_file():
        rows.append(_torch_cuda_row(dataset, runs))
    versions = {}
    for package in ("ai-edge-litert", "onnxruntime", "onnxruntime-ep-webgpu", "torch", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    result = {"bundle": bundle.name, "machine": _machine(), "versions": versions, "images": len(dataset),
              "runs": runs, "rows": rows, "seconds": round(time.perf_counter() - started, 1)}
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"gpu_{bundle.name}.json"
    path.write_text(json.dumps(result, indent=1))
    print(json.dumps({"results": str(path), "seconds": result["seconds"]}))
    return path


# ---------------------------------------------------------------- report (here)

def report(results: list[Path], write: Path | None) -> str:
    runs = [json.loads(p.read_text()) for p in results]
    machine = runs[0]["machine"]
    adapters = ", ".join(f"{a['name']} ({a['type']}, driver {a['driver_version']})"
                         for a in machine["vulkan"]["adapters"]) or machine["vulkan"]["error"] or "none"
    lines = ["# GPU check (benchmarks/gpu_check.py)", "",
             f"Machine: {machine['gpu']}; Vulkan adapters: {adapters}; {machine['cpus']} CPUs; Python "
             f"{machine['python']}. Versions: " + ", ".join(f"{k} {v}" for k, v in runs[0]["versions"].items()) + ".",
             f"{runs[0]['images']} val images; latency: {runs[0]['runs']} timed runs after a warm-up, batch 1, medians "
             "measured in the same run. CPU rows: the same file on this machine's CPU (XNNPACK / ONNX Runtime CPU).",
             "",
             "| artifact | where | precision | top-1 | agreement vs CPU | max abs diff | p50 ms | p90 ms "
             "| ops on CPU / refused |",
             "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for rows in (r["rows"] for r in runs):
        for row in rows:
            execution = row.get("execution", {})
            adapter = execution.get("adapter", {}).get("name", "")
            software = ", software: not GPU figures" if execution.get("software") else ""
            where = f"{row['where']} ({adapter}{software})" if adapter else row["where"]
            diff = row.get("max_abs_diff")
            latency = row.get("latency_ms", {})
            note = row.get("refused") or ", ".join(execution.get("cpu_ops", [])) or ""
            lines.append(f"| {row['artifact']} | {where} | {row.get('gpu_precision', '-')} | {row.get('top1', '-')} | "
                         f"{row.get('agreement', '-')} | {'-' if diff is None else f'{diff:.3g}'} | {latency.get('p50', '-')} | "
                         f"{latency.get('p90', '-')} | {note} |")
    text = "\n".join(lines) + "\n"
    if write:
        write.write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("prepare")
    p.add_argument("--out", type=Path, default=ROOT / ".gpu")
    p.add_argument("--images", type=int, default=200)
    r = commands.add_parser("run")
    r.add_argument("bundle", type=Path)
    r.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")))
    r.add_argument("--runs", type=int, default=200)
    r.add_argument("--software", action="store_true", help="accept a CPU-only Vulkan adapter (a dry run here)")
    r.add_argument("--no-install", action="store_true", help="use this environment's packages (a dry run here)")
    g = commands.add_parser("report")
    g.add_argument("results", type=Path, nargs="+")
    g.add_argument("--write", type=Path, default=None)
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.out, args.images)
    elif args.command == "run":
        run(args.bundle, args.out, args.runs, args.software, install=not args.no_install)
    else:
        print(report(args.results, args.write))


if __name__ == "__main__":
    main()
