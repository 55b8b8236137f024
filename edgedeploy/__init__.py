"""edgedeploy: take a PyTorch MobileNetV2 to the edge and prove it still works there."""

__version__ = "0.1.0"
