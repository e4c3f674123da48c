"""``python -m alice_ref.tools.experiment``."""

import sys

from .command import main

sys.exit(main())
