"""SSD anchors as the TF Object Detection API builds them (``ssd_anchor_generator`` in a pipeline config).

A detector's box encodings are offsets from these anchors, so decoding a port's boxes needs the very anchors
the model was trained with, in the order its heads are concatenated. This is ``create_ssd_anchors`` +
``MultipleGridAnchorGenerator`` + ``tile_anchors`` (research/object_detection/anchor_generators) with the
defaults SSD configs use: scales linear from ``min_scale`` to ``max_scale`` over the layers, each layer's
aspect ratios plus one box of the interpolated scale sqrt(s_i * s_i+1) (1.0 after the last layer), the lowest
layer reduced to (0.1, 1.0), (s_0, 2.0), (s_0, 0.5); centres at (i + 0.5) / size, no clipping (tall boxes
reach past 1). Google's configs write the last ratio as 0.3333, not 1/3, and their anchors carry it: the
quantized SSD-MobileNetV1's anchor range ends at exactly 0.95 / sqrt(float32(0.3333)).

Rows are (ycenter, xcenter, h, w), normalized to the image; within a layer row-major over (y, x), then the
anchor index; layers in order (finest first). numpy only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgedeploy.core.errors import ConfigError

__all__ = ["AnchorSpec", "anchors_per_location", "layer_box_specs", "ssd_anchors"]

ASPECT_RATIOS = (1.0, 2.0, 0.5, 3.0, 0.3333)
# The lowest layer's boxes when reduce_boxes_in_lowest_layer: (scale or None for the layer's own, ratio).
_LOWEST_LAYER = ((0.1, 1.0), (None, 2.0), (None, 0.5))


def layer_box_specs(num_layers: int, min_scale: float = 0.2, max_scale: float = 0.95,
                    aspect_ratios: tuple[float, ...] = ASPECT_RATIOS, interpolated_scale_aspect_ratio: float = 1.0,
                    reduce_boxes_in_lowest_layer: bool = True) -> list[list[tuple[float, float]]]:
    """Each layer's (scale, aspect ratio) pairs, in anchor order (``create_ssd_anchors``'s box_specs_list)."""
    if num_layers < 1:
        raise ConfigError(f"SSD anchors need at least one layer, got {num_layers}")
    step = (max_scale - min_scale) / (num_layers - 1) if num_layers > 1 else 0.0
    scales = [min_scale + step * i for i in range(num_layers)] + [1.0]
    specs = []
    for layer in range(num_layers):
        scale, scale_next = scales[layer], scales[layer + 1]
        if layer == 0 and reduce_boxes_in_lowest_layer:
            specs.append([(scale if s is None else s, ratio) for s, ratio in _LOWEST_LAYER])
            continue
        boxes = [(scale, float(ratio)) for ratio in aspect_ratios]
        if interpolated_scale_aspect_ratio > 0.0:
            boxes.append((float(np.sqrt(scale * scale_next)), interpolated_scale_aspect_ratio))
        specs.append(boxes)
    return specs


def _tile(size: int, boxes: list[tuple[float, float]]) -> np.ndarray:
    """One square layer's anchors (``tile_anchors`` with stride 1/size, offset 0.5/size, base size 1x1)."""
    scales, ratios = (np.array(v, dtype=np.float32) for v in zip(*boxes))
    root = np.sqrt(ratios)
    heights, widths = scales / root, scales * root
    stride = np.float32(1.0) / np.float32(size)
    centres = np.arange(size, dtype=np.float32) * stride + np.float32(0.5) * stride
    y, x, k = np.meshgrid(centres, centres, np.arange(len(boxes)), indexing="ij")
    return np.stack([y, x, heights[k], widths[k]], axis=-1).reshape(-1, 4).astype(np.float32)


def ssd_anchors(feature_map_sizes: tuple[int, ...], min_scale: float = 0.2, max_scale: float = 0.95,
                aspect_ratios: tuple[float, ...] = ASPECT_RATIOS, interpolated_scale_aspect_ratio: float = 1.0,
                reduce_boxes_in_lowest_layer: bool = True) -> np.ndarray:
    """(A, 4) float32 anchors (ycenter, xcenter, h, w) for square feature maps of these sizes, finest first."""
    if not feature_map_sizes or any(int(s) < 1 for s in feature_map_sizes):
        raise ConfigError(f"feature map sizes must be positive, got {tuple(feature_map_sizes)}")
    specs = layer_box_specs(len(feature_map_sizes), min_scale, max_scale, tuple(aspect_ratios),
                            interpolated_scale_aspect_ratio, reduce_boxes_in_lowest_layer)
    return np.concatenate([_tile(int(size), boxes) for size, boxes in zip(feature_map_sizes, specs)])


def anchors_per_location(num_layers: int, aspect_ratios: tuple[float, ...] = ASPECT_RATIOS,
                         interpolated_scale_aspect_ratio: float = 1.0,
                         reduce_boxes_in_lowest_layer: bool = True) -> tuple[int, ...]:
    """How many anchors each layer places per cell (3, 6, 6, 6, 6, 6 for the default SSD)."""
    specs = layer_box_specs(num_layers, aspect_ratios=tuple(aspect_ratios),
                            interpolated_scale_aspect_ratio=interpolated_scale_aspect_ratio,
                            reduce_boxes_in_lowest_layer=reduce_boxes_in_lowest_layer)
    return tuple(len(boxes) for boxes in specs)


@dataclass(frozen=True)
class AnchorSpec:
    """Everything the anchors depend on: recorded with an export so its boxes can be decoded later."""

    feature_map_sizes: tuple[int, ...]
    min_scale: float = 0.2
    max_scale: float = 0.95
    aspect_ratios: tuple[float, ...] = ASPECT_RATIOS
    interpolated_scale_aspect_ratio: float = 1.0
    reduce_boxes_in_lowest_layer: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "feature_map_sizes", tuple(int(s) for s in self.feature_map_sizes))
        object.__setattr__(self, "aspect_ratios", tuple(float(r) for r in self.aspect_ratios))
        if not self.feature_map_sizes or min(self.feature_map_sizes) < 1:
            raise ConfigError(f"feature map sizes must be positive, got {self.feature_map_sizes}")
        if not 0.0 < self.min_scale <= self.max_scale:
            raise ConfigError(f"anchor scales need 0 < min_scale <= max_scale, got {self.min_scale}, {self.max_scale}")
        if not self.aspect_ratios or min(self.aspect_ratios) <= 0.0:
            raise ConfigError(f"aspect ratios must be positive, got {self.aspect_ratios}")

    @property
    def num_anchors(self) -> int:
        per_cell = self.per_location()
        return sum(n * s * s for n, s in zip(per_cell, self.feature_map_sizes))

    def per_location(self) -> tuple[int, ...]:
        return anchors_per_location(len(self.feature_map_sizes), self.aspect_ratios,
                                    self.interpolated_scale_aspect_ratio, self.reduce_boxes_in_lowest_layer)

    def anchors(self) -> np.ndarray:
        return ssd_anchors(self.feature_map_sizes, self.min_scale, self.max_scale, self.aspect_ratios,
                           self.interpolated_scale_aspect_ratio, self.reduce_boxes_in_lowest_layer)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (tuples as lists)."""
        out = asdict(self)
        out["feature_map_sizes"] = list(self.feature_map_sizes)
        out["aspect_ratios"] = list(self.aspect_ratios)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnchorSpec:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown anchor parameters: {', '.join(sorted(unknown))}")
        return cls(**data)
