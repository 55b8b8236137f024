"""Mobile DeepLabv3 with a MobileNetV2 backbone: the config (torch-free), the network (torch) and
Google's float model read into it (the ``sample`` weights)."""
