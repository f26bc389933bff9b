"""Configuration from the environment, read in exactly one place.

``TERSIFY_HOME``    where exported scorers live (default ``~/.cache/tersify``);
``TERSIFY_SCORER``  the scorer ``Compressor()`` uses (default ``gemma-3-270m``): a model
                    name exported under the home, or a folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SCORER = "gemma-3-270m"


@dataclass(frozen=True)
class Settings:
    """Where scorers are found."""

    home: Path
    default_scorer: str = DEFAULT_SCORER

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read ``TERSIFY_HOME`` and ``TERSIFY_SCORER``."""
        env = os.environ if environ is None else environ
        cache = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        home = Path(env.get("TERSIFY_HOME") or cache / "tersify").expanduser()
        return cls(home=home, default_scorer=env.get("TERSIFY_SCORER") or DEFAULT_SCORER)

    def scorer_folder(self, name: str) -> Path:
        """The folder an exported scorer called ``name`` lives in."""
        return self.home / "scorers" / name
