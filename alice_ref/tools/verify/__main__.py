"""``python -m alice_ref.tools.verify [options]`` runs ``alice-ref verify``."""

import sys

from alice_ref.tools.verify import main

sys.exit(main())
