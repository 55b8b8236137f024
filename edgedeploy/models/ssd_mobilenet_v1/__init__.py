"""SSD with a MobileNetV1 backbone: the config (torch-free), the network (torch) and Google's quantized TFLite
detector read into it (its weights dequantized, its anchors and its post-processing options)."""
