"""``python -m dataprep.feedback --data ../shared/data/hm --out data/hm_feedback``."""

from dataprep.feedback.triplets import main

main()
