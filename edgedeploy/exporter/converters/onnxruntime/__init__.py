"""The onnxruntime runtime's export targets and their converters."""
