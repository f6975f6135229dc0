"""What a val-only feedback yardstick (a catalog other than H&M) holds, row by row.

A yardstick is judged by how many queries each bench row has (rows under
``MIN_VAL_QUERIES`` are flagged, never padded), how broad its relevant sets are (a catalog
without colourway links relates a reference to every item of its type and gender that meets
the request, so its sets are broader than H&M's) and on how many photos lightness could be
measured at all (lighter / darker need it on both ends).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from dataprep.feedback.attributes import HMItem
from dataprep.feedback.relations import ROWS, Query

MIN_VAL_QUERIES = 150  # the floors apply to rows with at least this many queries


def yardstick_stats(items: Sequence[HMItem], queries: Sequence[Query],
                    lightness: dict[str, float]) -> dict:
    """Per bench row and relation: queries and the median / quartiles of the relevant-set
    size; the rows under MIN_VAL_QUERIES; the share of items with a measured lightness."""
    sizes: dict[str, list[int]] = defaultdict(list)
    for q in queries:
        sizes[q.row].append(len(q.relevant))
        sizes[f"relation: {q.relation}"].append(len(q.relevant))
    rows = {name: {"queries": len(v), "relevant_median": float(np.median(v)),
                   "relevant_quartiles": [float(x) for x in np.percentile(v, [25, 75])]}
            for name, v in sizes.items()}
    counted = Counter(q.row for q in queries)
    return {"items": len(items),
            "lightness_usable": len(lightness),
            "lightness_usable_share": round(100 * len(lightness) / max(len(items), 1), 2),
            "rows": rows,
            "too_few_queries": sorted(r for r in dict.fromkeys(ROWS.values())
                                      if counted[r] < MIN_VAL_QUERIES),
            "min_val_queries": MIN_VAL_QUERIES}


def format_yardstick(stats: dict) -> str:
    """Markdown table: queries and median relevant-set size per bench row."""
    y = stats["yardstick"]
    lines = ["| bench row | val queries | median relevant | enough queries |",
             "|---|---:|---:|---|"]
    for row in dict.fromkeys(ROWS.values()):
        m = y["rows"].get(row, {"queries": 0, "relevant_median": 0.0})
        ok = "no: too few" if row in y["too_few_queries"] else "yes"
        lines.append(f"| {row} | {m['queries']} | {m['relevant_median']:.0f} | {ok} |")
    lines.append(f"\nlightness measured on {y['lightness_usable']} of {y['items']} items "
                 f"({y['lightness_usable_share']:.1f}%); rows under {y['min_val_queries']} "
                 "queries are reported as too few, not padded")
    return "\n".join(lines)
