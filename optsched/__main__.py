"""``python -m optsched``: the command line, as the ``optsched`` script runs it."""

import sys

from .cli import main

sys.exit(main())
