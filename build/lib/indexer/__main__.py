"""``python -m indexer build|stats|drop``: see indexer.cli."""

import sys

from indexer.cli import main

sys.exit(main())
