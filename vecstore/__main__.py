"""``python -m vecstore``: the command line (``vecstore.cli``)."""

import sys

from vecstore.cli import main

sys.exit(main())
