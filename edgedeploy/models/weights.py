"""Weights: a file, a family's named weights (``sample``, ``imagenet``: its registry row), or seeded random.

Every checkpoint is read with ``torch.load(weights_only=True)`` (no pickle code
runs) and checked key by key and shape by shape before anything is copied into
the model, so a bad file never leaves a half-loaded model behind. Named weights in another
format (Google's DeepLab .tflite) are read by the reader their row names.
"""

from __future__ import annotations

import hashlib
import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from edgedeploy.core.errors import DependencyError, WeightsError
from edgedeploy.core.hashing import sha256_file, sha256_files
from edgedeploy.core.sample_data import data_root
from edgedeploy.core.tf_checkpoint import tf_checkpoint_files
from edgedeploy.models import DEFAULT_MODEL, WEIGHT_NAMES, ModelConfig, NamedWeights, get_model

__all__ = ["LoadedWeights", "resolve_weights", "build_model", "weights_fingerprint", "state_dict_sha256",
           "checkpoint_num_classes", "RANDOM_SEED"]

RANDOM_SEED = 0
# Print at most this many mismatching keys: enough to diagnose, short enough for one line.
MAX_REPORTED_MISMATCHES = 3


@dataclass(frozen=True)
class LoadedWeights:
    """A validated state_dict plus what is known about the checkpoint it came from."""

    state_dict: dict[str, torch.Tensor]
    source: str
    # None: a user module's own parameters (no file).
    path: Path | None
    sha256: str | None
    mean: tuple[float, float, float] | None
    std: tuple[float, float, float] | None
    # The key mapper that renamed another library's checkpoint (e.g. from_timm), None if none was needed.
    key_mapping: str | None = None


def _read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise WeightsError(f"{path}: is a directory, not a weights file" if path.is_dir()
                           else f"{path}: weights file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for bad pickles/zips
        text = " ".join(str(exc).split())
        blocked = re.search(r"unsupported GLOBAL ([\w.]+)", text, re.IGNORECASE)
        if blocked:
            raise WeightsError(
                f"{path}: refused to load: the file references Python object {blocked.group(1)} "
                "(loading it could run code); save a plain state_dict of tensors instead"
            ) from exc
        detail = re.search(r"WeightsUnpickler error: (.*?)(?: Check the documentation|$)", text)
        reason = detail.group(1).strip() if detail else (text or exc.__class__.__name__)
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint ({reason[:160]})") from exc
    return _extract_state_dict(obj, path)


def _extract_state_dict(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsError(f"{path}: expected a state_dict (or a dict with 'state_dict'/'model'), got {type(obj).__name__}")
    state = dict(obj)
    if all(isinstance(k, str) and k.startswith("module.") for k in state):
        # Saved from DataParallel/DistributedDataParallel.
        state = {k[len("module."):]: v for k, v in state.items()}
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(f"{path}: entry {bad[0]!r} is not a tensor")
    return state


def check_state_dict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str, config: ModelConfig) -> None:
    """Raise WeightsError naming the first mismatches; never partially load."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong_shape)):
        if items:
            more = f" (+{len(items) - MAX_REPORTED_MISMATCHES} more)" if len(items) > MAX_REPORTED_MISMATCHES else ""
            problems.append(f"{label}: {', '.join(items[:MAX_REPORTED_MISMATCHES])}{more}")
    if problems:
        raise WeightsError(f"{source}: does not fit {config.name} "
                           f"(classes={config.num_classes}): " + "; ".join(problems))
    nonfinite = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if nonfinite:
        raise WeightsError(f"{source}: tensor {nonfinite[0]!r} holds NaN or Inf values")


def _download(known: NamedWeights) -> Path:
    """A published checkpoint through the torch hub cache (hash-checked)."""
    assert known.url is not None
    filename = known.url.rsplit("/", 1)[1]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if cached.is_file():
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    try:
        # Writes to a temp file, checks the sha256 prefix, then renames: no partial file.
        torch.hub.download_url_to_file(known.url, str(cached), hash_prefix=known.sha256, progress=False)
    except Exception as exc:
        raise DependencyError(
            f"cannot download the '{known.name}' weights ({exc.__class__.__name__}: {str(exc)[:100]}); "
            f"offline, put {filename} in {cached.parent} or pass --weights PATH"
        ) from exc
    return cached


def _named_path(known: NamedWeights) -> Path:
    if known.url is not None:
        return _download(known)
    assert known.data_file is not None
    return data_root() / known.data_file


def resolve_weights(spec: str, arch: str = DEFAULT_MODEL, config: ModelConfig | None = None) -> LoadedWeights | None:
    """``random`` -> None (keep the seeded init); a named weight of ``arch``'s family or a path -> weights.
    ``config``: the architecture a named reader builds the state_dict for (default: the family's default)."""
    family = get_model(arch)
    if spec == "random" or (spec == "module" and family.owns_weights):
        return None  # the seeded initialization, or the module's own parameters
    if spec == "module":
        raise WeightsError(f"--weights module means a user module's own parameters; {arch} is a registered family "
                           f"(its weights: {', '.join([w.name for w in family.weights] + ['random'])} or a path)")
    if spec in WEIGHT_NAMES:
        known = family.named_weights(spec)
        path = _named_path(known)
        if not path.is_file():
            raise WeightsError(f"{path}: {spec} weights file not found")
        digest = sha256_file(path)
        if not digest.startswith(known.sha256):
            what = "torchvision's" if known.url else f"the {arch} {spec} weights'"
            raise WeightsError(f"{path}: sha256 {digest[:12]}... does not match {what}; delete it and retry"
                               if known.url else f"{path}: sha256 {digest[:12]}... is not {what} ({known.sha256[:12]}...)")
        reader = known.read()
        state = reader(path, config or family.make_config()) if reader else _read_checkpoint(path)
        return LoadedWeights(state, spec, path, _variant_digest(digest, known), known.mean, known.std)
    path = Path(spec)
    tf_files = tf_checkpoint_files(path)
    if tf_files:
        if family.tf_checkpoint_reader is None:
            raise WeightsError(f"{path}: a TensorFlow checkpoint; {arch} reads PyTorch state_dicts only")
        reader = _load_entry(family.tf_checkpoint_reader)
        state = reader(path, config or family.make_config())
        # The TF Object Detection API feeds its SSDs (2 / 255) * pixel - 1: mean and std 0.5.
        return LoadedWeights(state, str(path), tf_files[0], sha256_files([(f.name, f) for f in tf_files]),
                             (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "tf-checkpoint")
    if not path.exists() and "/" not in spec and "." not in spec:
        names = ", ".join(WEIGHT_NAMES)
        raise WeightsError(f"unknown weights {spec!r}: give a file path or one of {names}")
    state, mapping = family.map_keys(_read_checkpoint(path))
    digest = sha256_file(path)
    # A file that is byte-identical to a named checkpoint keeps its preprocessing.
    known = next((w for w in family.weights if w.sha256 and digest.startswith(w.sha256) and not w.reader), None)
    return LoadedWeights(state, str(path), path, digest, known.mean if known else None, known.std if known else None,
                         mapping)


def checkpoint_num_classes(spec: str, arch: str = DEFAULT_MODEL) -> int | None:
    """The class count a checkpoint file records in its classifier (None: a weights name, or no classifier)."""
    family = get_model(arch)
    key = getattr(family, "classifier_key", None)
    if key is None or spec in WEIGHT_NAMES or not Path(spec).is_file():
        return None
    state, _ = family.map_keys(_read_checkpoint(Path(spec)))
    weight = state.get(key)
    return int(weight.shape[0]) if weight is not None and weight.ndim >= 1 else None


def weights_fingerprint(spec: str, arch: str = DEFAULT_MODEL) -> str:
    """What ``spec`` loads, as a digest, without loading it (for build caches); a user module's own parameters
    are hashed (its factory's name is the arch, which the build key holds too)."""
    family = get_model(arch)
    if spec in ("random", "module") and family.owns_weights:
        torch.manual_seed(RANDOM_SEED)
        return state_dict_sha256(family.build(None).state_dict())
    if spec == "random":
        return f"random:{RANDOM_SEED}"
    if spec in WEIGHT_NAMES:
        known = get_model(arch).named_weights(spec)
        if known.url is not None:
            # Downloads are checked against this prefix, so it names the content.
            return f"{spec}:{known.sha256}"
        path = _named_path(known)
        if not path.is_file():
            raise WeightsError(f"{path}: {spec} weights file not found")
        return _variant_digest(sha256_file(path), known)
    path = Path(spec)
    tf_files = tf_checkpoint_files(path)
    if tf_files:
        return sha256_files([(f.name, f) for f in tf_files])
    if not path.is_file():
        raise WeightsError(f"{path}: is a directory, not a weights file" if path.is_dir()
                           else f"{path}: weights file not found")
    return sha256_file(path)


def _load_entry(entry: str) -> Any:
    module, attr = entry.split(":")
    return getattr(importlib.import_module(module), attr)


def _variant_digest(file_digest: str, known: NamedWeights) -> str:
    """The digest of weights a reader derives from a file (its variant named), else the file's own."""
    return hashlib.sha256(f"{file_digest}:{known.variant}".encode()).hexdigest() if known.variant else file_digest


def build_model(config: ModelConfig, weights: str) -> tuple[torch.nn.Module, LoadedWeights | None]:
    """The network of ``config``'s family (the model registry's row) in eval mode with ``weights``
    loaded (validated first)."""
    torch.manual_seed(RANDOM_SEED)
    family = get_model(config.arch)
    model = family.build(config)
    loaded = resolve_weights(weights, config.arch, config)
    if loaded is not None:
        check_state_dict(model, loaded.state_dict, loaded.source, config)
        model.load_state_dict(loaded.state_dict, strict=True)
    elif family.owns_weights:
        loaded = LoadedWeights({}, "module", None, state_dict_sha256(model.state_dict()), None, None)
    return model.eval(), loaded


def state_dict_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """A digest of a state_dict's names, dtypes, shapes and values (a module's own parameters have no file)."""
    digest = hashlib.sha256()
    for key, tensor in state.items():
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{key}:{value.dtype}:{tuple(value.shape)};".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
