"""A candidate checkpoint against the shipped one, by the parts of the training log's ship rule
that its result files hold (issue 35's stages 83-87: docs/training_log.md).

    python -m bench.stage_rule --candidate DIR_OR_FILE ... [--shipped-results bench/results]

Why: every stage is scored by the same rule, and its arithmetic (the mean of twelve rows' gains,
each row's drop, each existing row against issue 35's figure) had been done by hand or by
one-off scripts; a figure in the log should come with the command that gives it. The candidate
is given by the result files of its three runs (``bench.accuracy``, ``bench.feedback_rows`` on
H&M, and on the second catalog with ``--catalog products``), or by folders holding them (each
run's ``--out-dir``); the shipped checkpoint's are the files ``bench/results/shipped.json``
names. Checked here:

(a) the five existing rows of ``bench.accuracy`` no more than 0.5 below issue 35's figures;
(b) the twelve feedback rows (lighter, darker, plainer/busier, negation, multi-change, another
    type, on both catalogs) up at least 1.0 hit@10 on average;
(c) no feedback row of at least 150 queries, on either catalog, more than 1.5 below the
    shipped checkpoint's; lighter, darker and negation at least 60 on H&M; the H&M share of
    the top 10 in the reference's product group no more than 0.5 below the shipped one's.

Conversations (``bench.multiturn``), speed (``bench.engines``) and the size cap are measured by
their own commands; the verdict here covers (a)-(c) only.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from bench._common import RESULTS, SHIPPED, table
from bench.feedback_rows import MIN_QUERIES, MODEL

RUNS = ("accuracy", "accuracy_feedback", "accuracy_feedback_products")  # results folder names
# Issue 35's figures of the rows that existed before it (bench.accuracy: dataset, metric):
# a candidate keeps each within EXISTING_SLACK.
EXISTING_ROWS = {("hm", "colourway R@10"): 86.70, ("hm", "attribute R@10"): 63.85,
                 ("hm", "kept@10"): 62.96, ("demo_catalog", "kept@10"): 96.53,
                 ("products", "hit@10"): 73.02}
EXISTING_SLACK = 0.5
# The six feedback rows of part (b), on each catalog (dataprep.FEEDBACK_ROWS is another thing:
# each relation's row).
RULE_ROWS = ("lighter", "darker", "plainer/busier", "negation", "multi-change",
             "type change")
MEAN_GAIN = 1.0  # (b): the twelve rows' mean gain over the shipped checkpoint
ROW_DROP = 1.5  # (c): no row of at least MIN_QUERIES queries lower by more
ROW_FLOOR = 60.0  # (c): issue 35's floor of these H&M rows
FLOORED_ROWS = ("lighter", "darker", "negation")
SHARE_DROP = 0.5  # (c): the H&M product-group share


def find_results(paths: Sequence[str | Path]) -> dict[str, Path]:
    """run name (RUNS) -> its result file, from files or folders searched for them; a run
    found twice, or missing, is refused."""
    files = []
    for p in map(Path, paths):
        files += sorted(p.rglob("*.json")) if p.is_dir() else [p]
    found: dict[str, Path] = {}
    for f in files:
        run = f.parent.name
        if run in RUNS:
            if run in found:
                raise ValueError(f"two {run} results: {found[run]} and {f}")
            found[run] = f
    missing = [r for r in RUNS if r not in found]
    if missing:
        raise ValueError(f"no {', '.join(missing)} result among {[str(p) for p in paths]}")
    return found


def shipped_results(results: Path = RESULTS) -> dict[str, Path]:
    """The shipped checkpoint's result files, as ``shipped.json`` names them."""
    index = json.loads((results / SHIPPED.name).read_text())
    return {run: results / index["results"][run]["file"] for run in RUNS}


def figures(files: dict[str, Path]) -> dict:
    """What the rule reads from one checkpoint's three result files."""
    acc, hm, products = (json.loads(files[r].read_text()) for r in RUNS)
    return {"fingerprint": acc["fingerprint"],
            "existing": {f"{d} {m}": acc["results"][d][MODEL]["average"][m]
                         for d, m in EXISTING_ROWS},
            "rows": {f"{catalog} {name}": rows[name] for catalog, report in
                     (("H&M", hm), ("products", products))
                     for rows in [report["results"][MODEL]["rows"]] for name in RULE_ROWS},
            "group share": hm["results"][MODEL]["kinds"]["all"]["in product group"]}


def check(candidate: dict, shipped: dict) -> dict:
    """Each part's lines (what, figure, bar, whether the figure is a change from the shipped
    one, passed) and the verdict of (a)-(c)."""
    a = [(f"{key} (issue 35: {floor:.2f})", candidate["existing"][key], floor - EXISTING_SLACK,
          False) for key, floor in zip(candidate["existing"], EXISTING_ROWS.values(), strict=True)]
    gains = {k: m["hit@10"] - shipped["rows"][k]["hit@10"] for k, m in candidate["rows"].items()}
    mean = sum(gains.values()) / len(gains)
    c = [(f"{k}: change", gain, -ROW_DROP, True) for k, gain in gains.items()
         if candidate["rows"][k]["queries"] >= MIN_QUERIES]
    c += [(f"H&M {k}", candidate["rows"][f"H&M {k}"]["hit@10"], ROW_FLOOR, False)
          for k in FLOORED_ROWS]
    c.append(("H&M group share", candidate["group share"],
              shipped["group share"] - SHARE_DROP, False))
    parts = {"a": a, "b": [("twelve rows: mean change", mean, MEAN_GAIN, True)], "c": c}
    lines = {p: [{"what": w, "figure": f, "bar": b, "change": d, "passed": f >= b}
                 for w, f, b, d in rows] for p, rows in parts.items()}
    return {"candidate": candidate["fingerprint"], "shipped": shipped["fingerprint"],
            "parts": lines, "passes": {p: all(x["passed"] for x in v) for p, v in lines.items()},
            "passes_a_to_c": all(x["passed"] for v in lines.values() for x in v)}


def format_report(report: dict) -> str:
    body = [(p, x["what"], f"{x['figure']:{'+' if x['change'] else ''}.2f}",
             f">= {x['bar']:{'+' if x['change'] else ''}.2f}", "yes" if x["passed"] else "NO")
            for p, lines in report["parts"].items() for x in lines]
    verdict = "passes" if report["passes_a_to_c"] else "fails " + ", ".join(
        f"({p})" for p, ok in report["passes"].items() if not ok)
    return (f"candidate {report['candidate']} against shipped {report['shipped']}\n"
            + table(body, ("part", "what", "figure", "bar", "passed"))
            + f"\n(a)-(c) {verdict}; (d) conversations, (e) speed and (f) size are measured "
            "by their own commands")


def main(argv: Sequence[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.stage_rule", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--candidate", nargs="+", required=True, metavar="DIR_OR_FILE",
                   help=f"the candidate's result files, or folders holding them ({RUNS})")
    p.add_argument("--shipped-results", default=str(RESULTS),
                   help="the results folder whose shipped.json names the shipped checkpoint's "
                   "files (default: %(default)s)")
    p.add_argument("--json", help="also write the report here")
    args = p.parse_args(argv)
    report = check(figures(find_results(args.candidate)),
                   figures(shipped_results(Path(args.shipped_results))))
    print(format_report(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
