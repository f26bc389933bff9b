"""tersify_scorer: the installed package's backend (tersify.triton.backends.scorer)."""

import os
import site
import sys

# The stub reads no PYTHONPATH: the launcher names its environment's paths.
for path in filter(None, os.environ.get("TERSIFY_SITE_PACKAGES", "").split(":")):
    site.addsitedir(path)

from tersify.triton.backends.scorer import TritonPythonModel
