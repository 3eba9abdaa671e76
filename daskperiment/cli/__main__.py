"""``python -m daskperiment.cli``: the ``daskperiment`` command."""

import sys

from daskperiment.cli import main

sys.exit(main())
