"""The package version, in one place (the root package and the OIP server metadata read it)."""

__version__ = "0.1.0"
