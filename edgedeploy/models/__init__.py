"""Model definitions, weight loading and complexity profiling."""

from edgedeploy.models.mobilenet_v2 import MobileNetV2, MobileNetV2Config

__all__ = ["MobileNetV2", "MobileNetV2Config"]
