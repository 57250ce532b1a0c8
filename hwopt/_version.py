"""The version of hwopt, in a module of its own so that every layer can read it without a cycle."""

__version__ = "0.1.0"
