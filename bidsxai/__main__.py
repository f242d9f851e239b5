"""``python -m bidsxai`` runs the CLI (what ``torchrun -m bidsxai`` needs)."""

import sys

from bidsxai.cli import main

sys.exit(main())
