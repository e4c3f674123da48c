"""``python -m alice_ref ...`` runs the ``alice-ref`` command line."""

import sys

from alice_ref.tools.cli import main

sys.exit(main())
