"""``python -m indexer.db start|stop|status``."""

import sys

from indexer.db.cli import main

if __name__ == "__main__":
    sys.exit(main())
