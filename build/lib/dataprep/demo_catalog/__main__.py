"""``python -m dataprep.demo_catalog --out DIR [--seed S] [--per-category N]``."""

from dataprep.demo_catalog.cli import main

if __name__ == "__main__":
    main()
