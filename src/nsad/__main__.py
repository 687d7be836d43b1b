"""``python -m nsad``: the command line (as the ``nsad`` script)."""

import sys

from nsad.cli import main

if __name__ == "__main__":  # importing the module (e.g. to collect doctests) must not run the command line
    sys.exit(main())
