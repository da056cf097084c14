"""Settings, built at the edges (CLI entry, flow entry) from flags and the environment.

Nothing here runs at import time. Environment variables:

- ``SOFTMAX_PIPE_MNIST``: the MNIST source when no ``--source`` is given
  (``keras``, ``download``, a folder of IDX files, or an ``.npz``).
- ``SOFTMAX_PIPE_CACHE``: cache folder (default: the user's cache dir).
- ``SOFTMAX_PIPE_REGISTRY``: registry URI (default: a folder in the user's data dir).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_MNIST = "SOFTMAX_PIPE_MNIST"
ENV_CACHE = "SOFTMAX_PIPE_CACHE"
ENV_REGISTRY = "SOFTMAX_PIPE_REGISTRY"


def default_cache_dir() -> Path:
    """The user's cache folder for softmax-pipe (``~/.cache/softmax-pipe`` on Linux)."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("softmax-pipe", appauthor=False))


def default_registry_dir() -> Path:
    """The default local registry (``~/.local/share/softmax-pipe/registry`` on Linux)."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("softmax-pipe", appauthor=False)) / "registry"


@dataclass(frozen=True)
class Settings:
    """Resolved settings: explicit values win over the environment, which wins over defaults."""

    source: str | None
    cache_dir: Path
    registry: str
    registry_is_default: bool

    @classmethod
    def build(
        cls,
        *,
        source: str | None = None,
        cache_dir: str | Path | None = None,
        registry: str | None = None,
    ) -> Settings:
        env = os.environ
        src = source or env.get(ENV_MNIST) or None
        cache = Path(cache_dir or env.get(ENV_CACHE) or default_cache_dir()).expanduser()
        reg = registry or env.get(ENV_REGISTRY) or ""
        is_default = not reg
        if is_default:
            reg = str(default_registry_dir())
        return cls(source=src, cache_dir=cache, registry=reg, registry_is_default=is_default)
