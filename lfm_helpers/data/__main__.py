"""``python -m lfm_helpers.data [--out DIR] [--seed N] [--check]``: regenerate or check ``data/``."""

import sys

from lfm_helpers.data.generate import main

sys.exit(main())
