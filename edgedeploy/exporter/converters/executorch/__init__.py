"""The executorch runtime's export targets and their converters."""
