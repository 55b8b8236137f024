"""SSDLite-MobileNetV2's hyper-parameters, without torch (validated by the CLI, recipes and manifests).

The values are those of the TF Object Detection API release ``ssdlite_mobilenet_v2_coco_2018_05_09``: its
``pipeline.config`` (quoted beside each constant) and its checkpoint's variable shapes, which are the ground truth
where the two disagree (see ``SSDLiteMobileNetV2Config.num_classes``). Channel counts follow slim's rules: the
backbone rounds ``channels * width`` to a multiple of 8 (never under ``min_depth``, never down by more than 10%),
the extra layers truncate it (``int(depth * width)``, at least ``min_depth``). Map sizes follow TF's "SAME"
arithmetic (a stride-2 layer gives ceil(size / 2)). The anchors and the post-processing options are plain dicts
(``anchor_parameters``, ``detection_parameters``) that ``edgedeploy.tasks.detection`` reads: models sit below tasks
in the import layers, so this module cannot build them itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from edgedeploy.core.limits import MAX_WIDTH, MIN_WIDTH
from edgedeploy.models.ssd_heads import check_detector_size

__all__ = [
    "ANCHORS_PER_LOCATION",
    "BLOCKS",
    "BN_EPS",
    "FEATURE_BLOCK",
    "MAX_RESOLUTION",
    "MAX_WIDTH",
    "MIN_DEPTH",
    "MIN_RESOLUTION",
    "MIN_WIDTH",
    "SSDLiteMobileNetV2Config",
    "slim_make_divisible",
]

# The API refuses images under 33 px (ssd_mobilenet_v2_feature_extractor: check_min_image_dim(33, ...)).
MIN_RESOLUTION, MAX_RESOLUTION = 33, 1024
# feature_extractor { min_depth: 16 }: the backbone's depth_multiplier arg scope and the extra layers' depth_fn.
MIN_DEPTH = 16
# slim MobileNet's depth_multiplier(divisible_by=8) and expand_input_by_factor(6, divisible_by=8).
DIVISOR = 8
# batch_norm { epsilon: 0.0010000000475 } (float32 1e-3) in both conv_hyperparams; the backbone's own
# mobilenet_v2.training_scope leaves slim.batch_norm's default epsilon, also 0.001. PyTorch's default is 1e-5.
BN_EPS = 1e-3
# slim's V2_DEF (feature_extractor { type: "ssd_mobilenet_v2" }): Conv (32, 3x3 s2), the 17 expanded_conv blocks
# as (expansion, output channels, depthwise stride), Conv_1 (1280, 1x1; scaled by the width too: the API does
# not use finegrain_classification_mode).
STEM_CHANNELS, HEAD_CHANNELS = 32, 1280
BLOCKS = ((1, 16, 1), (6, 24, 2), (6, 24, 1), (6, 32, 2), (6, 32, 1), (6, 32, 1), (6, 64, 2), (6, 64, 1), (6, 64, 1),
          (6, 64, 1), (6, 96, 1), (6, 96, 1), (6, 96, 1), (6, 160, 2), (6, 160, 1), (6, 160, 1), (6, 320, 1))
# feature_map_layout from_layer ['layer_15/expansion_output', 'layer_19', '', '', '', '']: slim numbers the spec's
# ops from layer_1 (Conv), so layer_15 is expanded_conv_13 (its 1x1 expansion, after ReLU6, at stride 16) and
# layer_19 is Conv_1; then four extra layers of layer_depth [512, 256, 256, 128].
FEATURE_BLOCK = 13
FEATURE_LAYERS = ("layer_15/expansion_output", "layer_19")
EXTRA_DEPTHS = (512, 256, 256, 128)
# box_predictor { convolutional_box_predictor { kernel_size: 3 use_depthwise: true } }; the extra layers' 3x3 is
# multi_resolution_feature_maps' default conv_kernel_size.
KERNEL_SIZE = 3
# box_coder { faster_rcnn_box_coder { y_scale: 10 x_scale: 10 height_scale: 5 width_scale: 5 } }
BOX_SCALES = (10.0, 10.0, 5.0, 5.0)
# anchor_generator { ssd_anchor_generator { num_layers: 6 min_scale: 0.2 max_scale: 0.95 aspect_ratios: 1, 2, 0.5,
# 3, 0.3333 } } (float32 in the proto, written here as Google's configs write them; 0.3333, not 1/3); the
# interpolated scale's ratio 1.0 and reduce_boxes_in_lowest_layer true are the proto's defaults.
ANCHOR_OPTIONS: dict[str, Any] = {"min_scale": 0.2, "max_scale": 0.95, "aspect_ratios": [1.0, 2.0, 0.5, 3.0, 0.3333],
                                  "interpolated_scale_aspect_ratio": 1.0, "reduce_boxes_in_lowest_layer": True}
ANCHORS_PER_LOCATION = (3, 6, 6, 6, 6, 6)
# post_processing { batch_non_max_suppression { score_threshold: 0.3 iou_threshold: 0.6 max_detections_per_class:
# 100 max_total_detections: 100 } score_converter: SIGMOID }. batch_non_max_suppression suppresses each class on its
# own, then keeps the best max_total_detections: "per-class". Its per-class cap (100) cannot bind under a total cap
# of 100, so max_total_detections alone is kept.
NMS: dict[str, Any] = {"score_threshold": 0.3, "iou_threshold": 0.6, "max_detections": 100, "mode": "per-class"}


def slim_make_divisible(value: float, divisor: int = DIVISOR, min_value: int | None = None) -> int:
    """slim MobileNet's ``_make_divisible`` (as ``mobilenet_v2.network.make_divisible``, which needs torch)."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


@dataclass(frozen=True)
class SSDLiteMobileNetV2Config:
    """Defaults are Google's COCO SSDLite (width 1.0, 300 px, COCO's 90-id scheme).

    ``num_classes`` counts the real classes; each anchor gets ``num_classes + 1`` scores, background first. The
    shipped pipeline.config says ``num_classes: 11``, but the checkpoint's class predictors have 3 x 91 and 6 x 91
    outputs: the weights are the 90-class COCO model, and 90 is the default.
    """

    arch: ClassVar[str] = "ssdlite_mobilenet_v2"
    width: float = 1.0
    resolution: int = 300
    num_classes: int = 90

    def __post_init__(self) -> None:
        check_detector_size(self, (MIN_RESOLUTION, MAX_RESOLUTION), "Google's SSDLite-MobileNetV2 uses 300")

    @property
    def name(self) -> str:
        return f"ssdlite_mobilenet_v2_{self.width}_{self.resolution}"

    def depth(self, channels: int) -> int:
        """The backbone's depth rule (slim MobileNet's depth_multiplier with min_depth 16)."""
        return slim_make_divisible(channels * self.width, DIVISOR, MIN_DEPTH)

    def stem_channels(self) -> int:
        return self.depth(STEM_CHANNELS)

    def head_channels(self) -> int:
        """Conv_1's depth (1280 at width 1.0)."""
        return self.depth(HEAD_CHANNELS)

    def blocks(self) -> tuple[tuple[int, int, int, int], ...]:
        """(input, expanded, output channels, stride) of each expanded_conv; expanded == input: no 1x1 expansion
        (slim expands only when expand_input_by_factor's size exceeds the input's)."""
        layout, in_ch = [], self.stem_channels()
        for expansion, channels, stride in BLOCKS:
            out_ch = self.depth(channels)
            hidden = in_ch if expansion == 1 else slim_make_divisible(in_ch * expansion, DIVISOR)
            layout.append((in_ch, hidden, out_ch, stride))
            in_ch = out_ch
        return tuple(layout)

    def extra_channels(self) -> tuple[tuple[int, int], ...]:
        """(1x1 depth, 3x3 stride-2 separable depth) of each extra layer ((256, 512), (128, 256), (128, 256),
        (64, 128) at width 1.0): multi_resolution_feature_maps' depth_fn, max(int(depth * width), min_depth)."""
        def depth_fn(depth: float) -> int:
            return max(int(depth * self.width), MIN_DEPTH)
        return tuple((depth_fn(d / 2), depth_fn(d)) for d in EXTRA_DEPTHS)

    def feature_channels(self) -> tuple[int, ...]:
        """Depths of the six maps the predictors read (576, 1280, 512, 256, 256, 128 at width 1.0)."""
        return (self.blocks()[FEATURE_BLOCK][1], self.head_channels()) + tuple(o for _, o in self.extra_channels())

    def backbone_sizes(self) -> tuple[int, ...]:
        """Spatial size after Conv and after each expanded_conv (150, 150, 75, 75, 38, ... at 300)."""
        size = -(-self.resolution // 2)
        sizes = [size]
        for _, _, stride in BLOCKS:
            size = -(-size // stride)
            sizes.append(size)
        return tuple(sizes)

    def feature_map_sizes(self) -> tuple[int, ...]:
        """The six predictor maps' sizes (19, 10, 5, 3, 2, 1 at 300): the expansion runs before its block's
        stride-2 depthwise, so map 0 has the size of that block's input."""
        sizes = self.backbone_sizes()
        maps = [sizes[FEATURE_BLOCK], sizes[-1]]
        for _ in EXTRA_DEPTHS:
            maps.append(-(-maps[-1] // 2))
        return tuple(maps)

    @property
    def num_anchors(self) -> int:
        return sum(k * s * s for k, s in zip(ANCHORS_PER_LOCATION, self.feature_map_sizes()))

    def anchor_parameters(self) -> dict[str, Any]:
        """``AnchorSpec.from_dict`` input: the release's ssd_anchor_generator on these maps."""
        return {"feature_map_sizes": list(self.feature_map_sizes()),
                **{k: list(v) if isinstance(v, list) else v for k, v in ANCHOR_OPTIONS.items()}}

    def detection_parameters(self) -> dict[str, Any]:
        """``DetectionHead.from_dict`` input: anchors, box coder scales, labels (COCO's 90 ids for 90 classes, else
        the model's own categories 1..num_classes), the release's per-class NMS."""
        labels = "coco90" if self.num_classes == 90 else "contiguous"
        return {"anchors": self.anchor_parameters(), "box_scales": list(BOX_SCALES), "labels": labels,
                "nms": dict(NMS)}
