"""Small throwaway catalogs for the system tests (kill loop, load): copies of a source
catalog's items (the demo catalog by default) in a temporary folder (never in the repository),
grown and changed on demand; and the process checks they share (alive, descendants, a SIGKILL
that then waits for the children to go).

Why copies: the runs change images under the indexer's feet and add items mid-run; the shared
demo catalog must stay as it is for everyone else.
"""

from __future__ import annotations

import csv
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

from PIL import Image, ImageOps

from project_settings import REPO_ROOT

DEMO_CATALOG = REPO_ROOT / "data" / "demo_catalog"


def demo_rows(source: Path = DEMO_CATALOG) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of the demo catalog's metadata.csv."""
    if not (source / "metadata.csv").is_file():
        raise SystemExit(f"{source}/metadata.csv not found: generate the demo catalog first "
                         "(python -m dataprep.demo_catalog --out data/demo_catalog ...)")
    with (source / "metadata.csv").open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


class FaultCatalog:
    """A catalog folder (``images/`` + ``metadata.csv``) holding a subset of the demo catalog."""

    def __init__(self, root: Path, source: Path = DEMO_CATALOG, seed: int = 0):
        self.root, self.source = root, source
        self.header, rows = demo_rows(source)
        random.Random(seed).shuffle(rows)
        self._spare = rows
        self.rows: list[dict[str, str]] = []
        (root / "images").mkdir(parents=True, exist_ok=True)

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def ids(self) -> list[str]:
        return [r["id"] for r in self.rows]

    def add(self, n: int) -> list[str]:
        """Copy ``n`` more demo items in and rewrite metadata.csv; returns their ids."""
        new, self._spare = self._spare[:n], self._spare[n:]
        if len(new) < n:
            raise SystemExit(f"the demo catalog has only {len(self.rows) + len(new)} items")
        for row in new:
            src = next((self.source / "images").glob(f"{row['id']}.*"))
            shutil.copyfile(src, self.images / src.name)
        self.rows += new
        tmp = self.root / "metadata.csv.tmp"
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, self.header)
            writer.writeheader()
            writer.writerows(self.rows)
        tmp.replace(self.root / "metadata.csv")  # the indexer never reads half a file
        return [r["id"] for r in new]

    def photos_outside(self, n: int, dest: Path) -> list[Path]:
        """Copies of ``n`` demo photos that will never be in this catalog (shoppers' uploads)."""
        out = []
        for i, row in enumerate(self._spare[-n:]):
            src = next((self.source / "images").glob(f"{row['id']}.*"))
            out.append(dest / f"ref_{i}{src.suffix}")
            shutil.copyfile(src, out[-1])
        self._spare = self._spare[:-n]
        return out

    def path(self, item_id: str) -> Path:
        return next(self.images.glob(f"{item_id}.*"))

    def change(self, ids: list[str], rng: random.Random) -> None:
        """Give each item a new image (mirrored, shifted colours): new bytes, new vector."""
        for item_id in ids:
            path = self.path(item_id)
            with Image.open(path) as im:
                img = ImageOps.mirror(im.convert("RGB"))
            shift = rng.randint(8, 40)
            img = img.point(lambda v, s=shift: min(255, v + s) if v < 235 else v)
            tmp = path.with_name(f".{path.name}.tmp")
            img.save(tmp, format="JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG",
                     quality=90)
            tmp.replace(path)


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc/*/task/*/children)."""
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            for kid in kids:
                if kid not in found:
                    found.add(kid)
                    todo.append(kid)
    return found


def alive(pid: int) -> bool:
    """True for a live process (a zombie waiting to be reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def kill_and_check(proc: subprocess.Popen, grace_s: float) -> tuple[list[int], list[int]]:
    """SIGKILL ``proc`` alone (as a crash would), then wait up to ``grace_s`` for its child
    processes to end by themselves. Returns (children seen, children still alive); the
    leftovers are then killed so that one failure does not poison the next round."""
    children = sorted(descendants(proc.pid))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(alive(p) for p in children):
        time.sleep(0.05)
    left = [p for p in children if alive(p)]
    for pid in left:
        try:
            subprocess.run(["kill", "-9", str(pid)], check=False)
        except OSError:
            pass
    return children, left
