"""Configuration from the environment, read in exactly one place.

``TERSIFY_HOME``    where exported scorers live (default ``~/.cache/tersify``);
``TERSIFY_SCORER``  the scorer ``Compressor()`` uses (default ``gemma-3-270m``): a model
                    name exported under the home, or a folder.
``TERSIFY_RANKER``  the ranker question-aware compression uses (default
                    ``all-minilm-l6-v2``): a name exported under the home, or a folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SCORER = "gemma-3-270m"
DEFAULT_RANKER = "all-minilm-l6-v2"


@dataclass(frozen=True)
class Settings:
    """Where scorers and rankers are found."""

    home: Path
    default_scorer: str = DEFAULT_SCORER
    default_ranker: str = DEFAULT_RANKER

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read ``TERSIFY_HOME``, ``TERSIFY_SCORER`` and ``TERSIFY_RANKER``."""
        env = os.environ if environ is None else environ
        cache = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        home = Path(env.get("TERSIFY_HOME") or cache / "tersify").expanduser()
        return cls(
            home=home,
            default_scorer=env.get("TERSIFY_SCORER") or DEFAULT_SCORER,
            default_ranker=env.get("TERSIFY_RANKER") or DEFAULT_RANKER,
        )

    def scorer_folder(self, name: str) -> Path:
        """The folder an exported scorer called ``name`` lives in."""
        return self.home / "scorers" / name

    def ranker_folder(self, name: str) -> Path:
        """The folder an exported ranker called ``name`` lives in."""
        return self.home / "rankers" / name

    def resolve(self, spec: str | os.PathLike[str] | None, *, kind: str = "scorer") -> Path:
        """The folder ``spec`` names: a folder, a model name under the home, or the default.

        ``kind`` is ``"scorer"`` or ``"ranker"``: which default and which folder of the home.
        """
        ranker = kind == "ranker"
        default = self.default_ranker if ranker else self.default_scorer
        name = default if spec is None else os.fspath(spec)
        path = Path(name).expanduser()
        if path.is_dir() or os.sep in name or name.startswith("."):
            return path
        return self.ranker_folder(name) if ranker else self.scorer_folder(name)
