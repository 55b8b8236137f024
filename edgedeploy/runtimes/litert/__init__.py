"""litert."""
