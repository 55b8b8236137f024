"""Converters: pure functions from a source artifact (or model) to an artifact path."""
