"""edgedeploy's version (here, not in the package root, so no layer imports the root's API facade)."""

__version__ = "0.1.0"
