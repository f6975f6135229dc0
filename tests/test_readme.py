"""The front page stays short, its links resolve, and its results table is the JSON's.

Why: the README is what a newcomer reads in ten minutes (at most 300 lines of at most 100
characters), and its one results table is the figure people quote; a figure typed by hand
drifts from the run that produced it. The table names its source JSON in an HTML comment
(``<!-- results: PATH ... -->`` ... ``<!-- /results -->``); every number in it must be that
JSON's field rounded as printed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MAX_LINES = 300
MAX_WIDTH = 100

# Row label -> (dataset key in the JSON's "results", prefix of the metric names in "average").
SPLITS = {
    "H&M, all": ("hm", ""),
    "H&M, colourway": ("hm", "colourway "),
    "H&M, attribute change": ("hm", "attribute "),
    "fashion-products": ("products", ""),
    "demo catalog": ("demo_catalog", ""),
}
METHODS = {"FashionVLP": "FashionVLP", "combiner": "combiner"}
# Cells printed as "-": not measured for a query kind (hit@10, kept@10 of the H&M subsets), or
# meaningless with one relevant item per query (the demo catalog's hit@10 = R@10, P@10 <= 10).
BLANK = {("H&M, colourway", "hit@10"), ("H&M, colourway", "kept@10"),
         ("H&M, attribute change", "hit@10"), ("H&M, attribute change", "kept@10"),
         ("demo catalog", "hit@10"), ("demo catalog", "P@10")}
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def results_block(text: str) -> tuple[Path, list[str]]:
    """The source JSON named by the results comment and the table lines under it."""
    match = re.search(r"<!-- results: (\S+)[^>]*-->\n(.*?)\n<!-- /results -->", text, re.S)
    assert match, "README.md has no <!-- results: PATH --> ... <!-- /results --> table"
    return ROOT / match.group(1), match.group(2).splitlines()


def cells(line: str) -> list[str]:
    return [c.strip().replace("**", "") for c in line.strip().strip("|").split("|")]


def expected(result: dict, split: str, method: str, column: str) -> str:
    """The JSON field behind one cell, formatted as the table prints it."""
    dataset, prefix = SPLITS[split]
    average = result["results"][dataset][METHODS[method]]["average"]
    if column == "queries":
        n = average[prefix + "queries"] if prefix else result["sizes"][dataset]["queries"]
        return f"{n:,}"
    return f"{average[prefix + column]:.2f}"


def table_mismatches(text: str) -> list[str]:
    """Every cell of the README's results table that differs from its source JSON."""
    source, lines = results_block(text)
    result = json.loads(source.read_text())
    header = cells(lines[0])
    assert header[:3] == ["val split", "queries", "method"], header
    problems, rows = [], 0
    for line in lines[2:]:
        row = dict(zip(header, cells(line), strict=True))
        split, method = row["val split"], row["method"]
        if split not in SPLITS or method not in METHODS:
            problems.append(f"unknown row {split!r} / {method!r}: add it to SPLITS / METHODS")
            continue
        rows += 1
        for column in header[1:]:
            if column == "method":
                continue
            if row[column] == "-" or (split, column) in BLANK:
                if row[column] != "-" or (split, column) not in BLANK:
                    problems.append(f"{split} / {method} / {column}: '-' only where BLANK")
                continue
            try:
                want = expected(result, split, method, column)
            except KeyError:
                problems.append(f"{split} / {method} / {column}: no such field in {source}")
                continue
            if row[column] != want:
                problems.append(f"{split} / {method} / {column}: README {row[column]}, "
                                f"{source.relative_to(ROOT)} {want}")
    if rows < len(SPLITS) * len(METHODS):
        problems.append(f"only {rows} rows: every split with both methods is expected")
    return problems


def test_readme_is_short_and_narrow():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines (at most {MAX_LINES})"
    wide = [(i, len(line)) for i, line in enumerate(lines, 1) if len(line) > MAX_WIDTH]
    assert not wide, f"lines over {MAX_WIDTH} characters (line, length): {wide}"


def test_results_table_matches_its_json():
    assert table_mismatches(README.read_text()) == []


def edits(text: str) -> list[tuple[str, str]]:
    """Four edits of the table's first FashionVLP row: a figure off by 0.01, the query count
    off by one, a figure swapped for the combiner's, a figure blanked."""
    _, lines = results_block(text)
    ours, theirs = lines[2], lines[3]
    figure, queries, other = cells(ours)[3], cells(ours)[1], cells(theirs)[3]
    nudged = f"{float(figure) + (0.01 if float(figure) < 100 else -0.01):.2f}"
    fewer = f"{int(queries.replace(',', '')) - 1:,}"
    return [(ours, ours.replace(f"| {figure} |", f"| {nudged} |", 1)),
            (ours, ours.replace(f"| {queries} |", f"| {fewer} |", 1)),
            (ours, ours.replace(f"| {figure} |", f"| {other} |", 1)),
            (ours, ours.replace(f"| {figure} |", "| - |", 1))]


@pytest.mark.parametrize("which", range(4))
def test_an_edited_figure_is_caught(which):
    text = README.read_text()
    old, new = edits(text)[which]
    assert old != new
    assert table_mismatches(text.replace(old, new, 1))


def test_stated_fingerprint_is_the_json_and_the_shipped_checkpoint():
    text = README.read_text()
    source, _ = results_block(text)
    fingerprint = json.loads(source.read_text())["fingerprint"]
    shipped = json.loads((ROOT / "checkpoints/demo/config.json").read_text())["fingerprint"]
    assert fingerprint == shipped, f"{source} scored {fingerprint}, checkpoints/demo is {shipped}"
    assert f"fingerprint {fingerprint}" in text
    if source.parent.parent.name == "results":  # bench/results/<benchmark>/<fingerprint>.json
        assert source.stem == fingerprint, f"{source} holds the scores of {fingerprint}"


@pytest.mark.parametrize("page", [README, *sorted((ROOT / "docs").glob("*.md"))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a URL or an anchor on the same page
        path = (page.parent / target.split("#", 1)[0]).resolve()
        if not path.exists():
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)} links to missing files: {broken}"


def test_settings_table_lists_every_declared_variable():
    from project_settings import VARIABLES

    block = re.search(r"<!-- settings -->\n(.*?)<!-- /settings -->", README.read_text(), re.S)
    assert block, "README.md has no <!-- settings --> ... <!-- /settings --> table"
    listed = re.findall(r"^\| `([A-Z_]+)` \|", block.group(1), re.M)
    assert len(listed) == len(set(listed)), f"listed twice: {listed}"
    assert set(listed) == set(VARIABLES), (f"missing: {sorted(set(VARIABLES) - set(listed))}, "
                                           f"not declared: {sorted(set(listed) - set(VARIABLES))}")


def section(text: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README.md has no '## {title}' section"
    return match.group(1)


def cli_help(module: str) -> str:
    result = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, text=True,
                            capture_output=True, timeout=300, check=True)
    return result.stdout


@pytest.mark.parametrize("title, module", [("Training", "model.train"),
                                           ("Evaluation", "model.evaluate")])
@pytest.mark.slow
def test_options_the_readme_names_exist(title: str, module: str):
    """Every --option the section names is one the command accepts (run_app.sh's and train.sh's
    own, on lines that call them, are theirs)."""
    named = set()
    for line in section(README.read_text(), title).splitlines():
        line = line.split("run_app.sh")[0].split("train.sh --recipe")[0]
        named.update(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", line))
    assert named, f"no options found in '## {title}'"
    accepted = set(re.findall(r"--[a-z][a-z0-9-]*", cli_help(module)))
    assert named <= accepted, f"{module} has no {sorted(named - accepted)}"
