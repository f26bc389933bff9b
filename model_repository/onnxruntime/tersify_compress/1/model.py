"""tersify_compress: the installed package's backend (tersify.triton.backends.compress)."""

import os
import site
import sys

# The stub reads no PYTHONPATH: the launcher names its environment's paths.
sys.path[:0] = [p for p in os.environ.get("TERSIFY_STUB_SITE_PACKAGES", "").split(":") if p]
for path in filter(None, os.environ.get("TERSIFY_SITE_PACKAGES", "").split(":")):
    site.addsitedir(path)

from tersify.triton.backends.compress import TritonPythonModel
