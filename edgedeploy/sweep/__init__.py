"""Sweeps on Ray: a recipe times a matrix of models, targets and quantization settings."""
