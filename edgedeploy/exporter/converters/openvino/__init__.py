"""The openvino runtime's export targets and their converters."""
