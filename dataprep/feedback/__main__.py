"""``python -m dataprep.feedback --data ../shared/data/hm --out data/hm_feedback``; the
products yardstick: ``--catalog products --data ../shared/data/fashion-products
--products-split data/products --out data/products_feedback``."""

from dataprep.feedback.triplets import main

main()
