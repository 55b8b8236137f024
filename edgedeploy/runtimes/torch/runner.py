"""PyTorch runtime: a registered model family with weights loaded, run in eager mode; its task says
how it is fed (preprocessing) and what its output is."""

from __future__ import annotations

import logging
from contextlib import nullcontext
from importlib import metadata
from typing import Any

import numpy as np
import torch

from edgedeploy.core.io_spec import IMAGENET_MEAN, IMAGENET_STD, INPUT_NAME, InputSpec, ModelIO, OutputSpec
from edgedeploy.core.outputs import by_name
from edgedeploy.core.usercode import contained
from edgedeploy.models import model_task
from edgedeploy.models.modules import ModuleConfig
from edgedeploy.models.weights import build_model
from edgedeploy.runtimes.base import LoadOptions, Runner
from edgedeploy.tasks import get_task

__all__ = ["TorchRunner", "named_outputs"]

log = logging.getLogger(__name__)


def named_outputs(result: Any, specs: tuple[OutputSpec, ...], source: str) -> dict[str, np.ndarray]:
    """A forward pass's result (a tensor, a tuple of tensors or a dict of tensors) as arrays by output name."""
    if isinstance(result, torch.Tensor):
        result = (result,)
    if isinstance(result, dict):
        return by_name(specs, list(result), [t.detach().numpy() for t in result.values()], source)
    return by_name(specs, (), [t.detach().numpy() for t in result], source)


class TorchRunner(Runner):
    runtime = "torch"
    batch_size = None

    def __init__(self, source: str, options: LoadOptions):
        config = options.architecture.config()
        self.config = config
        self.model, self.weights = build_model(config, source)
        task = get_task(model_task(config))
        self.source = source
        if options.mean is not None and options.std is not None:
            mean, std = options.mean, options.std
        elif self.weights is not None and self.weights.mean is not None:
            mean, std = self.weights.mean, self.weights.std  # type: ignore[assignment]
        else:
            # torchvision-style checkpoints expect ImageNet statistics; say so rather than guess silently.
            log.info("weights %s: unknown preprocessing, assuming ImageNet mean/std (override with --mean/--std)", source)
            mean, std = IMAGENET_MEAN, IMAGENET_STD
        first, *more = task.output_specs(config)
        self.io = ModelIO(
            input=InputSpec(INPUT_NAME, (1, 3, config.resolution, config.resolution)),
            output=first,
            more_outputs=tuple(more),
            preprocessing=task.preprocessing(config.resolution, mean, std, options.raw_pixels),
            task=task.name,
            extra=task.io_extra(config),
        )
        self.threads = options.threads
        torch.set_num_threads(options.threads)
        # A user's module runs contained (their forward may raise, exit or return garbage); ours do not need it.
        self._user_code = config.arch if isinstance(config, ModuleConfig) else None

    def infer(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        with contained(self._user_code, "forward") if self._user_code else nullcontext(), torch.inference_mode():
            return named_outputs(self.model(torch.from_numpy(tensor)), self.io.outputs, self.source)

    def output_key(self) -> str | None:
        """The weights' digest, the architecture, the preprocessing, edgedeploy's code and torch's and Pillow's
        versions (None for weights without a digest, e.g. random, and for a user's own module, whose code can
        change under the same parameters)."""
        from edgedeploy.models.modules import ModuleConfig

        if self.weights is None or not self.weights.sha256 or isinstance(self.config, ModuleConfig):
            return None
        from edgedeploy.core.cache import code_fingerprint, content_key

        return content_key("torch-outputs", self.weights.sha256, repr(self.config), self.io.preprocessing.to_dict(),
                           code_fingerprint(), torch.__version__, metadata.version("pillow"))

    @property
    def size_bytes(self) -> int | None:
        return self.weights.path.stat().st_size if self.weights and self.weights.path else None

    def versions(self) -> dict[str, str]:
        return {"torch": metadata.version("torch")}
