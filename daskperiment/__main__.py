"""``python -m daskperiment``: the ``daskperiment`` command."""

import sys

from daskperiment.cli import main

sys.exit(main())
