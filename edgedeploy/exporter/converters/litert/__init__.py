"""The litert runtime's export targets and their converters."""
