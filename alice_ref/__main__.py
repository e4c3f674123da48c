"""``python -m alice_ref ...`` runs the ``alice-ref`` command line."""

import sys

from .cli import main

sys.exit(main())
