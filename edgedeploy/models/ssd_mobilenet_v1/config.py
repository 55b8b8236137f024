"""SSD-MobileNetV1's hyper-parameters, without torch (validated by the CLI, recipes and manifests).

The layer sizes follow TF's "SAME" arithmetic (each stride-2 layer gives ceil(size / 2)), as the TF Object
Detection API's graph has them; the anchors' parameters are its ``ssd_anchor_generator`` defaults. They are
given as a plain dict (``anchor_parameters``), which ``edgedeploy.tasks.detection.anchors.AnchorSpec.from_dict``
reads: models sit below tasks in the import layers, so this module cannot build the AnchorSpec itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from edgedeploy.core.limits import MAX_WIDTH, MIN_WIDTH
from edgedeploy.models.ssd_heads import check_detector_size

__all__ = [
    "ANCHORS_PER_LOCATION",
    "BACKBONE_STRIDES",
    "MAX_RESOLUTION",
    "MAX_WIDTH",
    "MIN_DEPTH",
    "MIN_RESOLUTION",
    "MIN_WIDTH",
    "SSDMobileNetV1Config",
]

# MobileNetV1's published depth multipliers run from 0.25 to 1.0; slim builds up to 1.4 as well.
# With "SAME" padding every map is at least 1x1 at any size: the lower bound is the backbone's total stride
# (32 px: maps 2, 1, 1, 1, 1, 1); the upper one the largest input the Object Detection API's SSDs use.
MIN_RESOLUTION, MAX_RESOLUTION = 32, 1024
# slim's MobileNetV1 before depth multiplication: conv0 then 13 (depthwise stride, pointwise channels).
STEM_CHANNELS = 32
BLOCKS = ((1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512), (1, 512), (1, 512), (1, 512), (1, 512),
          (1, 512), (2, 1024), (1, 1024))
BACKBONE_STRIDES = (2,) + tuple(s for s, _ in BLOCKS)
# The feature maps the box predictors read: Conv2d_11_pointwise, Conv2d_13_pointwise, then four extra layers
# of these depths (the 1x1 before each 3x3 stride-2 one has half), the API's feature_map_layout.
FEATURE_BLOCKS = (11, 13)
EXTRA_DEPTHS = (512, 256, 256, 128)
# The SSD configs' min_depth: no layer narrower.
MIN_DEPTH = 16
# The TFLite_Detection_PostProcess options of Google's detector (read from its .tflite): what its own mAP is
# measured with.
GOOGLE_NMS = {"score_threshold": 1e-8, "iou_threshold": 0.6, "max_detections": 10, "mode": "fast"}
# The box coder's (y, x, h, w) scales of SSD configs.
BOX_SCALES = (10.0, 10.0, 5.0, 5.0)
# create_ssd_anchors with reduce_boxes_in_lowest_layer: 3 boxes per cell on the lowest map, 5 ratios + 1 elsewhere.
ANCHORS_PER_LOCATION = (3, 6, 6, 6, 6, 6)


@dataclass(frozen=True)
class SSDMobileNetV1Config:
    """Defaults are Google's quantized COCO detector (width 0.75, 300 px, COCO's 90-id scheme).

    ``num_classes`` counts the real classes; each anchor gets ``num_classes + 1`` scores, background first.
    """

    arch: ClassVar[str] = "ssd_mobilenet_v1"
    width: float = 0.75
    resolution: int = 300
    num_classes: int = 90

    def __post_init__(self) -> None:
        check_detector_size(self, (MIN_RESOLUTION, MAX_RESOLUTION), "Google's SSD-MobileNetV1 uses 300")

    @property
    def name(self) -> str:
        return f"ssd_mobilenet_v1_{self.width}_{self.resolution}"

    def depth(self, channels: int) -> int:
        """slim's depth rule: max(int(channels * width), min_depth)."""
        return max(int(channels * self.width), MIN_DEPTH)

    def backbone_channels(self) -> tuple[int, ...]:
        """Output channels of conv0 and the 13 blocks (24, 48, 96, 96, 192, 192, 384 x 6, 768, 768 at 0.75)."""
        return (self.depth(STEM_CHANNELS),) + tuple(self.depth(c) for _, c in BLOCKS)

    def extra_channels(self) -> tuple[tuple[int, int], ...]:
        """(1x1 depth, 3x3 stride-2 depth) of each extra layer ((192, 384), (96, 192), (96, 192), (48, 96))."""
        return tuple((self.depth(d // 2), self.depth(d)) for d in EXTRA_DEPTHS)

    def backbone_sizes(self) -> tuple[int, ...]:
        """Spatial size after conv0 and after each block (150, 150, 75, 75, 38, ... at 300)."""
        sizes, size = [], self.resolution
        for stride in BACKBONE_STRIDES:
            size = -(-size // stride)
            sizes.append(size)
        return tuple(sizes)

    def feature_map_sizes(self) -> tuple[int, ...]:
        """The six predictor maps' sizes (19, 10, 5, 3, 2, 1 at 300): TF "SAME", ceil(size / stride)."""
        sizes = self.backbone_sizes()
        maps = [sizes[block] for block in FEATURE_BLOCKS]
        for _ in EXTRA_DEPTHS:
            maps.append(-(-maps[-1] // 2))
        return tuple(maps)

    @property
    def num_anchors(self) -> int:
        return sum(k * s * s for k, s in zip(ANCHORS_PER_LOCATION, self.feature_map_sizes()))

    def anchor_parameters(self) -> dict[str, Any]:
        """``AnchorSpec.from_dict`` input: the Object Detection API's SSD anchor defaults on these maps
        (aspect ratio 0.3333 as Google's configs write it, not 1/3)."""
        return {"feature_map_sizes": list(self.feature_map_sizes()), "min_scale": 0.2, "max_scale": 0.95,
                "aspect_ratios": [1.0, 2.0, 0.5, 3.0, 0.3333], "interpolated_scale_aspect_ratio": 1.0,
                "reduce_boxes_in_lowest_layer": True}

    def detection_parameters(self) -> dict[str, Any]:
        """``DetectionHead.from_dict`` input: anchors, box coder scales, labels (COCO's 90 ids for 90 classes, else
        the model's own categories 1..num_classes), Google's NMS."""
        labels = "coco90" if self.num_classes == 90 else "contiguous"
        return {"anchors": self.anchor_parameters(), "box_scales": list(BOX_SCALES), "labels": labels,
                "nms": dict(GOOGLE_NMS)}
