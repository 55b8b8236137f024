"""SSDLite with a MobileNetV2 backbone (the MobileNetV2 paper's Table 6 detector): the config (torch-free), the
network (torch) and the reader of the TF Object Detection API's checkpoint (its variables mapped one-to-one)."""
