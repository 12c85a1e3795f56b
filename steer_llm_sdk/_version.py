"""The package's version, in a module of its own: code inside the package reads it
from here, never from the package root (which would load the whole client)."""

__version__ = "0.3.0"
