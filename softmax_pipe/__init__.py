"""softmax-pipe: the application layer (CLI, settings, errors) over softmax_core, registry and flows."""

__version__ = "0.1.0"
