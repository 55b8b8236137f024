"""mmsegmentation's heads on its dilated MobileNetV2 (M-V2-D8): FCN, PSPNet, DeepLabV3, DeepLabV3+."""
