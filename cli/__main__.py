"""``python -m tersify.cli``: the ``tersify`` command."""

import sys

from tersify.cli import main

sys.exit(main())
