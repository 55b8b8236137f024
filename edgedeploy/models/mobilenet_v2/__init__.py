"""MobileNetV2: the config (torch-free) and the network (torch)."""
