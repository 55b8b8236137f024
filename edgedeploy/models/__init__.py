"""The model registry: one row per model family, so adding a family touches one place.

A row names the family's torch-free config class (validated by the CLI, recipes and
manifests without importing torch), its network class (imported only to build it), its task
(edgedeploy.tasks: what its output means) and its named weights (``--weights sample``).
Query it like timm: ``list_models("mobilenet*")``, ``get_model("mobilenet_v2")``.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib
from dataclasses import dataclass
from typing import Any, Protocol

from edgedeploy.core.errors import ConfigError
from edgedeploy.core.io_spec import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["ModelConfig", "ModelFamily", "NamedWeights", "MODELS", "WEIGHT_NAMES", "NAMED_WEIGHTS", "DEFAULT_MODEL", "list_models",
           "get_model", "register_model", "config_options", "model_task", "COMMON_FIELDS"]

# Names that --weights accepts besides a file path; eval/bench treat them as PyTorch models. "module": a user
# module's own parameters (edgedeploy.models.modules).
# Weights a family may ship under a name (its NamedWeights rows); "random" and "module" are built, not read.
NAMED_WEIGHTS = ("sample", "sample-offgrid", "imagenet")
WEIGHT_NAMES = (*NAMED_WEIGHTS, "random", "module")
DEFAULT_MODEL = "mobilenet_v2"
# The config fields every family has (and every command takes); others are the family's own options.
COMMON_FIELDS = ("width", "resolution", "num_classes")
# Config fields that describe the model rather than option it (a user module's name, probed task and declared
# detection post-processing).
_IDENTITY_FIELDS = ("arch", "task", "detection")


class ModelConfig(Protocol):
    """What the pipeline, runners and manifests read of any family's config."""

    arch: str
    width: float
    resolution: int
    num_classes: int

    @property
    def name(self) -> str:
        """The artifact stem, e.g. mobilenet_v2_1.0_224."""


@dataclass(frozen=True)
class NamedWeights:
    """Weights ``--weights NAME`` loads: a file of the shared data folder or a download, with the
    preprocessing its model was trained with."""

    name: str
    description: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    # Where: a path inside the sample data folder, or a URL (kept in torch's hub cache).
    data_file: str | None = None
    url: str | None = None
    # The content's sha256 (data files: the whole digest; torchvision downloads: the prefix it checks).
    sha256: str = ""
    # "module:function" (path) -> state_dict of the family's network; None: a PyTorch checkpoint.
    reader: str | None = None
    # Weights derived from the file rather than stored in it (an off-grid copy made by the reader): named in
    # their digest, so they never share one with the file's own weights (caches key on it).
    variant: str = ""

    def read(self) -> Any:
        return _load(self.reader) if self.reader else None


@dataclass(frozen=True)
class ModelFamily:
    name: str
    description: str
    # "module:Class" of the config dataclass (width, resolution, num_classes, own options; torch-free).
    config: str
    # "module:Class" of the torch.nn.Module, built from a config.
    network: str
    # The task (edgedeploy.tasks) whose metrics, parity and gate the family's models get.
    task: str = "classification"
    weights: tuple[NamedWeights, ...] = ()
    # "module:function"s that rename another library's checkpoint keys to the family's (state -> state, or None
    # when the state_dict is not in that library's layout), tried in order on a checkpoint that does not fit.
    key_mappers: tuple[str, ...] = ()
    # The state_dict key of the classifier's weight (its first dim is the class count a checkpoint records).
    classifier_key: str | None = None
    # "module:function" (prefix, config) -> state_dict for another framework's checkpoint given to --weights as
    # its prefix (a TF checkpoint: ``model.ckpt`` for model.ckpt.index + model.ckpt.data-*).
    tf_checkpoint_reader: str | None = None
    # Registered families are built randomly initialized and loaded; a user module brings its own parameters.
    owns_weights = False

    @property
    def default_weights(self) -> str:
        """What --weights means when not given: the family's first named weights, else random."""
        return self.weights[0].name if self.weights else "random"

    def make_config(self, **values: Any) -> ModelConfig:
        """The family's config; ``values`` beyond width, resolution and class count are the family's own
        options (``--model-option KEY=VALUE``), refused when the family has no such option."""
        cls = _load(self.config)
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            own = sorted(fields - set(COMMON_FIELDS))
            raise ConfigError(f"{self.name} has no option {', '.join(unknown)} (its options: {', '.join(own) or 'none'})")
        try:
            config: ModelConfig = cls(**values)
        except TypeError as exc:  # a value of the wrong type for a field
            raise ConfigError(f"{self.name}: {exc}") from None
        return config

    def named_weights(self, name: str) -> NamedWeights:
        found = next((w for w in self.weights if w.name == name), None)
        if found is None:
            names = ", ".join([w.name for w in self.weights] + ["random"])
            raise ConfigError(f"{self.name} has no {name!r} weights (it has: {names}; or give a checkpoint path)")
        return found

    def build(self, config: Any) -> Any:
        return _load(self.network)(config)

    def map_keys(self, state: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        """``state`` in the family's key names, and the mapper that renamed it (None: already the family's)."""
        for entry in self.key_mappers:
            renamed = _load(entry)(state)
            if renamed is not None:
                return renamed, entry.rsplit(":", 1)[1]
        return state, None


def _load(entry: str) -> Any:
    module, attr = entry.split(":")
    return getattr(importlib.import_module(module), attr)


def config_options(config: ModelConfig) -> dict[str, Any]:
    """A config's own options (beyond width, resolution and class count), e.g. DeepLab's output stride."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)  # type: ignore[arg-type]
            if f.name not in COMMON_FIELDS + _IDENTITY_FIELDS}


def model_task(config: ModelConfig) -> str:
    """The task of ``config``'s model: its family's, or for a user module what its forward pass returned."""
    return getattr(config, "task", None) or get_model(config.arch).task


_HALF = (0.5, 0.5, 0.5)
# The classifier's sample weights (Google's TF2 MobileNetV2 1.0/224, BN folded; ../shared/data/README.md).
_SAMPLE_FILE, _SAMPLE_SHA256 = ("mobilenet_v2_imagenet.pth",
                                "56f77ad4ecd72a879ba3895e55427b0aee6f7c64611872a559fc8e7d5453c08e")


def _imagenet_backbone(role: str, reader: str, variant: str) -> NamedWeights:
    """A family's ``sample`` weights made from the classifier's: the ImageNet MobileNetV2 as ``role`` says."""
    return NamedWeights("sample", f"the MobileNetV2 sample weights (ImageNet) as {role}", _HALF, _HALF,
                        data_file=_SAMPLE_FILE, sha256=_SAMPLE_SHA256, reader=reader, variant=variant)

MODELS: dict[str, ModelFamily] = {
    m.name: m
    for m in (
        ModelFamily(
            name="mobilenet_v2",
            description="MobileNetV2 (Sandler et al., 2018), torchvision-compatible keys, width 0.25-2.0 (channel rules: torchvision, paddleclas, tf-slim)",
            config="edgedeploy.models.mobilenet_v2.config:MobileNetV2Config",
            network="edgedeploy.models.mobilenet_v2.network:MobileNetV2",
            key_mappers=("edgedeploy.models.mobilenet_v2.timm_keys:from_timm",),
            classifier_key="classifier.1.weight",
            weights=(
                # Google's TF2 MobileNetV2 1.0/224 weights with BN folded (../shared/data/README.md).
                NamedWeights("sample", "sample weights from the shared data folder (mean/std 0.5)", _HALF, _HALF,
                             data_file=_SAMPLE_FILE, sha256=_SAMPLE_SHA256),
                # The sample weights plus the per-channel int8 rounding residual a float-trained model has (a
                # fixture for quantization studies, not a trained model; ../shared/data/README.md).
                NamedWeights("sample-offgrid", "the sample weights off the int8 grid, as a float-trained model's are",
                             _HALF, _HALF, data_file="mobilenet_v2_imagenet_offgrid.pth",
                             sha256="313d17d89caac488f5a8ab8620af025e7240f003c4d49401d4c4f581548e5e8e"),
                # torchvision MobileNet_V2_Weights.IMAGENET1K_V1 (71.878 top-1 on the full val set); torchvision
                # names files by the first 8 hex digits of their sha256 and checks only those.
                NamedWeights("imagenet", "torchvision IMAGENET1K_V1", IMAGENET_MEAN, IMAGENET_STD,
                             url="https://download.pytorch.org/models/mobilenet_v2-b0353104.pth", sha256="b0353104"),
            ),
        ),
        ModelFamily(
            name="deeplabv3_mobilenet_v2",
            description="Mobile DeepLabv3 (Sandler et al., 2018, 6.3): dilated MobileNetV2, image pooling + 1x1 "
                        "head, output stride 8 or 16",
            config="edgedeploy.models.deeplabv3_mobilenet_v2.config:DeepLabV3MobileNetV2Config",
            network="edgedeploy.models.deeplabv3_mobilenet_v2.network:DeepLabV3MobileNetV2",
            task="segmentation",
            weights=(
                # Google's float Mobile DeepLabv3 (PASCAL VOC, 0.5/257, stride 8) read out of its .tflite.
                NamedWeights("sample", "Google's float Mobile DeepLabv3 (.tflite in the shared data folder)", _HALF,
                             _HALF, data_file="segmentation/deeplabv3_257_mv_gpu.tflite",
                             sha256="68a539782c2c6a72f8aac3724600124a85ed977162b44e84cbae5db717c933c6",
                             reader="edgedeploy.models.deeplabv3_mobilenet_v2.sample:read_tflite_state_dict"),
            ),
        ),
        ModelFamily(
            name="ssd_mobilenet_v1",
            description="SSD with a MobileNetV1 backbone (Liu et al., 2016; Google's quantized COCO detector): 6 "
                        "feature maps, 1917 anchors at 300 px, COCO's 90 ids",
            config="edgedeploy.models.ssd_mobilenet_v1.config:SSDMobileNetV1Config",
            network="edgedeploy.models.ssd_mobilenet_v1.network:SSDMobileNetV1",
            task="detection",
            weights=(
                # Google's uint8 TFLite detector (../shared/data/README.md), its weights dequantized.
                NamedWeights("sample", "Google's quantized COCO detector (.tflite in the shared data folder), "
                             "weights dequantized", _HALF, _HALF,
                             data_file="detection/ssd_mobilenet_v1_coco_quant.tflite",
                             sha256="e4b118e5e4531945de2e659742c7c590f7536f8d0ed26d135abcfe83b4779d13",
                             reader="edgedeploy.models.ssd_mobilenet_v1.sample:read_tflite_state_dict"),
                # The same weights off the uint8 grid they sit on, as a float-trained model's are (a fixture
                # for int8 studies, made by the reader with a fixed seed; not a trained model).
                NamedWeights("sample-offgrid", "Google's detector's weights off the int8 grid, as a float-trained "
                             "model's are", _HALF, _HALF, data_file="detection/ssd_mobilenet_v1_coco_quant.tflite",
                             sha256="e4b118e5e4531945de2e659742c7c590f7536f8d0ed26d135abcfe83b4779d13",
                             reader="edgedeploy.models.ssd_mobilenet_v1.sample:read_tflite_offgrid_state_dict",
                             variant="offgrid-seed0"),
            ),
        ),
        ModelFamily(
            name="ssdlite_mobilenet_v2",
            description="SSDLite with a MobileNetV2 backbone (Sandler et al., 2018, Table 6; the TF Object Detection "
                        "API's ssdlite_mobilenet_v2_coco): 6 feature maps, 1917 anchors at 300 px, COCO's 90 ids",
            config="edgedeploy.models.ssdlite_mobilenet_v2.config:SSDLiteMobileNetV2Config",
            network="edgedeploy.models.ssdlite_mobilenet_v2.network:SSDLiteMobileNetV2",
            task="detection",
            # The shared folder has the release's variable index, not its data: --weights takes the official
            # checkpoint's prefix, a .pth of this family, the ImageNet backbone with a seeded head, or random.
            weights=(
                _imagenet_backbone("the backbone, a seeded detection head (not a trained detector)",
                                   "edgedeploy.models.ssdlite_mobilenet_v2.backbone:read_backbone_state_dict",
                                   "ssdlite-backbone-seed0"),
            ),
            tf_checkpoint_reader="edgedeploy.models.ssdlite_mobilenet_v2.checkpoint:read_tf_checkpoint",
        ),
        *(ModelFamily(
            name=name,
            description=f"mmsegmentation's {head} on its dilated MobileNetV2 (M-V2-D8, output stride 8), mmseg's "
                        "parameter names (its checkpoints load as they are), 19 classes (Cityscapes; 150: ADE20K)",
            config=f"edgedeploy.models.mmseg_mobilenet_v2.config:{config}",
            network="edgedeploy.models.mmseg_mobilenet_v2.network:MMSegMobileNetV2",
            task="segmentation",
            key_mappers=("edgedeploy.models.mmseg_mobilenet_v2.checkpoint:from_mmseg",),
            classifier_key="decode_head.conv_seg.weight",
            weights=(
                _imagenet_backbone("the dilated backbone, a seeded head standardized on it (not a trained "
                                   "segmentor)", "edgedeploy.models.mmseg_mobilenet_v2.checkpoint:read_backbone_state_dict",
                                   f"mmseg-backbone-{name}-seed0"),
            ),
        ) for name, head, config in (
            ("fcn_mobilenet_v2", "FCN", "FCNConfig"),
            ("pspnet_mobilenet_v2", "PSPNet (pyramid pooling, bins 1/2/3/6)", "PSPNetConfig"),
            ("deeplabv3_aspp_mobilenet_v2", "DeepLabV3 (ASPP, rates 12/24/36)", "DeepLabV3Config"),
            ("deeplabv3plus_mobilenet_v2", "DeepLabV3+ (separable ASPP, stride-4 decoder)", "DeepLabV3PlusConfig"),
        )),
    )
}


def register_model(family: ModelFamily) -> ModelFamily:
    """Add a family to the registry (a plugin's one call); the name must be new, its weight names known."""
    if family.name in MODELS:
        raise ConfigError(f"model {family.name!r} is already registered")
    unknown = [w.name for w in family.weights if w.name not in NAMED_WEIGHTS]
    if unknown:
        raise ConfigError(f"model {family.name}: weights may be named {', '.join(NAMED_WEIGHTS)}, "
                          f"not {', '.join(unknown)}")
    MODELS[family.name] = family
    return family


def list_models(pattern: str = "*") -> list[str]:
    """The registered families (a user module's family is named by its factory, never listed)."""
    return [name for name in MODELS if fnmatch.fnmatch(name, pattern)]


def get_model(name: str) -> ModelFamily:
    """A registered family, or for ``package.module:callable`` the family of that factory's module (made from
    the name, so recipes, sweeps and Ray workers resolve it by name too; the registry is not changed)."""
    if name in MODELS:
        return MODELS[name]
    if ":" in name:
        from edgedeploy.models.modules import INSTANCE_FAMILIES, module_family

        instance = INSTANCE_FAMILIES.get(name)
        return instance if instance is not None else module_family(name)  # type: ignore[return-value]
    raise ConfigError(f"unknown model {name!r}; known models: {', '.join(list_models())} (or a module: "
                      "package.module:callable)")
