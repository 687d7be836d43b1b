"""``python -m nsad``: the command line (as the ``nsad`` script)."""

import sys

from nsad.cli import main

sys.exit(main())
