"""Kill loop: index a catalog while SIGKILLing the build (20 times) and then the database
(5 times) at random moments, finish, and check that nothing was lost, duplicated or left behind.

    python -m tests.system.kill_loop --items 600 --kills 20 --db-kills 5 \
        --checkpoint checkpoints/demo

Each indexer round changes a few images first (so every round has work and the final check
can tell a current vector from a stale one), starts ``python -m indexer build`` as a user
would, SIGKILLs only its main process at a random moment (like a crash or the OOM killer) and
then checks that every process it had started (the decoding workers) ends within
``--grace`` seconds by itself. Each database round SIGKILLs the embedded SecantusDB under a
running build, keeps it down for a random outage and starts it again; the build must ride it
out. At the end one build runs to completion and the store is compared with the files: every
item exactly once (by id and by image path), with the SHA-256 of its current file and the
vector the checkpoint gives that file now. Runs on its own SecantusDB on a free port and a
temporary copy of demo-catalog items (``--source``); prints a table and writes
bench/results/kill_loop/<fingerprint>.json. ``tests/test_system_kill_loop.py`` runs it small
on every ``bash run_tests.sh``.

Kill moments are drawn within the build's own duration, so the loop reaches its kills on any
machine speed: after the catalog is indexed once, one indexer round runs to its end unkilled
and is timed (from its start, and from the moment it logs its plan). Then rounds take turns:
a "start" round dies at a uniform moment in the first 90% of that start-to-end time (imports,
model load, hashing and planning included), a "plan" round in the first 90% of the
plan-to-end time after its own plan is logged (decoding, embedding), and a "write" round, which
changes ``--db-change`` images so its build has several batches, dies by progress once it has
stored a random number of items short of its last batch (between two writes). A round that
still ends before its moment is a resume, not a kill, and shortens the windows to its own
times. Database rounds die by progress too, so a write is always still to come.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pymongo

from bench._common import RESULTS, machine_line, run_benchmark, table, temporary_server
from imaging import file_sha256, load_image
from indexer import EmbeddedServer, from_binary
from project_settings import DEFAULT_CHECKPOINT, REPO_ROOT
from tests.system.fault_catalog import DEMO_CATALOG, FaultCatalog, alive, kill_and_check

log = logging.getLogger("tests.system.kill_loop")
MAX_ROUNDS_PER_KILL = 3  # bounds the run if builds keep ending before their kill
POLL_S = 0.02
PLAN_LINE = "to embed"  # the build logs "N items: K to embed, ..." once it has planned
ANCHORS = ("write", "start", "plan")  # indexer round i dies after ANCHORS[i % 3]


@dataclass(frozen=True)
class KillLoopConfig:
    items: int = 600  # catalog size
    kills: int = 20  # SIGKILLs of the indexer
    db_kills: int = 5  # SIGKILLs of the database under a running build
    change: int = 25  # images changed before each "start" and "plan" indexer round
    db_change: int = 150  # images changed before each "write" and database round: several
    # batches of work, so the kill comes between two writes
    outage_s: tuple[float, float] = (1.0, 10.0)  # database down for a uniform time in this
    grace_s: float = 5.0  # children of a killed build must be gone this long after the kill
    workers: int = 2  # decoding workers of each build
    batch: int = 32  # images per forward pass and write (`indexer build --batch`)
    checkpoint: Path = Path(DEFAULT_CHECKPOINT)
    source: Path = DEMO_CATALOG  # the catalog whose items are copied in
    seed: int = 0
    out_dir: Path = RESULTS


def parse_args(argv: list[str]) -> KillLoopConfig:
    d = KillLoopConfig()
    p = argparse.ArgumentParser(prog="python -m tests.system.kill_loop", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=d.items)
    p.add_argument("--kills", type=int, default=d.kills)
    p.add_argument("--db-kills", type=int, default=d.db_kills)
    p.add_argument("--change", type=int, default=d.change)
    p.add_argument("--db-change", type=int, default=d.db_change)
    p.add_argument("--outage", type=float, nargs=2, default=d.outage_s, metavar=("MIN", "MAX"))
    p.add_argument("--grace", type=float, default=d.grace_s)
    p.add_argument("--workers", type=int, default=d.workers)
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--checkpoint", type=Path, default=d.checkpoint)
    p.add_argument("--source", type=Path, default=d.source,
                   help="catalog folder (images/ + metadata.csv) the items are copied from")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--out-dir", type=Path, default=d.out_dir, help="results root")
    a = p.parse_args(argv)
    if a.db_change <= a.batch:
        p.error("--db-change must exceed --batch: \"write\" and database rounds kill before the "
                "build's last batch, so they need two batches of work")
    if not 0 < a.change <= a.items or not 0 < a.db_change <= a.items:
        p.error("--change and --db-change must be between 1 and --items")
    return KillLoopConfig(items=a.items, kills=a.kills, db_kills=a.db_kills, change=a.change,
                          db_change=a.db_change, outage_s=tuple(a.outage), grace_s=a.grace,
                          workers=a.workers, batch=a.batch, checkpoint=a.checkpoint,
                          source=a.source, seed=a.seed, out_dir=a.out_dir)


@dataclass
class Build:
    """One running ``python -m indexer build``: when it started and logged its plan."""

    proc: subprocess.Popen
    log_path: Path
    since: dt.datetime  # documents it writes carry an indexed_at after this
    started: float = field(default_factory=time.monotonic)
    planned: float | None = None

    def running(self) -> bool:
        """Polls the process and its log (noting the moment the plan appears)."""
        if self.planned is None and PLAN_LINE in self.log_path.read_text(errors="replace"):
            self.planned = time.monotonic()
        return self.proc.poll() is None

    def wait_for(self, condition: Callable[[], bool]) -> bool:
        """Poll until ``condition()`` holds (True) or the build has ended (False)."""
        while self.running():
            if condition():
                return True
            time.sleep(POLL_S)
        return False

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


class Builds:
    """Starts ``python -m indexer build`` on the catalog, as a user would."""

    def __init__(self, cfg: KillLoopConfig, catalog: FaultCatalog, env: dict[str, str],
                 logs: Path):
        self.cfg, self.catalog, self.env, self.logs = cfg, catalog, env, logs
        self.n = 0

    def start(self) -> Build:
        self.n += 1
        log_path = self.logs / f"build{self.n:02d}.log"
        since = dt.datetime.now(dt.UTC)
        with log_path.open("wb") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "indexer", "build", "--images", str(self.catalog.root),
                 "--checkpoint", str(self.cfg.checkpoint), "--workers", str(self.cfg.workers),
                 "--batch", str(self.cfg.batch), "--no-progress"], cwd=REPO_ROOT, env=self.env,
                stdout=fh, stderr=subprocess.STDOUT)
        return Build(proc, log_path, since)


@dataclass
class Windows:
    """How long an indexer round's build lasts from its start and from its plan: kill moments
    are drawn in the first ``share`` of these. Measured on a build run to its end, then
    shortened by any build that ends sooner (the kill never came)."""

    start_to_end_s: float
    plan_to_end_s: float
    share: float = 0.9
    shortened: int = 0

    def observe(self, build: Build, ended: float) -> None:
        before = (self.start_to_end_s, self.plan_to_end_s)
        self.start_to_end_s = min(self.start_to_end_s, ended - build.started)
        if build.planned is not None:
            self.plan_to_end_s = min(self.plan_to_end_s, ended - build.planned)
        self.shortened += before != (self.start_to_end_s, self.plan_to_end_s)


def written_since(items, since: dt.datetime) -> int:
    """Documents a build started at ``since`` has written so far."""
    return items.count_documents({"indexed_at": {"$gte": since}})


def unkilled(builds: Builds) -> tuple[Build, float]:
    """A build run to its end; returns it and the moment it was seen ended."""
    build = builds.start()
    build.wait_for(lambda: False)
    if build.proc.returncode != 0 or build.planned is None:
        raise SystemExit(f"an unkilled build failed (exit {build.proc.returncode}):\n"
                         f"{build.log_text()[-3000:]}")
    return build, time.monotonic()


def measure_round(cfg: KillLoopConfig, catalog: FaultCatalog, builds: Builds,
                  rng: random.Random) -> tuple[Windows, dict]:
    """Index the catalog once (as a shop would before it changes), then run one indexer
    round unkilled and time it: the windows of the kills to come."""
    first, first_end = unkilled(builds)
    catalog.change(rng.sample(catalog.ids, cfg.change), rng)
    build, ended = unkilled(builds)
    windows = Windows(ended - build.started, ended - build.planned)
    return windows, {"round": 0, "killed": False, "measured": True,
                     "initial_build_s": round(first_end - first.started, 2),
                     "start_to_end_s": round(windows.start_to_end_s, 2),
                     "plan_to_end_s": round(windows.plan_to_end_s, 2)}


def indexer_round(i: int, cfg: KillLoopConfig, builds: Builds, windows: Windows, items,
                  rng: random.Random) -> dict:
    """Round i dies after ANCHORS[i % 3]: a moment after its start or after its plan is
    logged, drawn within the window measured for that stretch (Windows), or once it has
    stored ``target`` items, short of its last batch."""
    anchor = ANCHORS[i % 3]
    before = items.count_documents({})
    build = builds.start()
    moment: dict = {}
    if anchor == "start":
        delay = moment["delay_s"] = rng.uniform(0.05, windows.share) * windows.start_to_end_s
        build.wait_for(lambda: time.monotonic() >= build.started + delay)
    elif anchor == "plan":
        delay = moment["delay_s"] = rng.uniform(0.0, windows.share) * windows.plan_to_end_s
        build.wait_for(lambda: build.planned is not None
                       and time.monotonic() >= build.planned + delay)
    else:
        target = moment["target_written"] = rng.randint(1, cfg.db_change - cfg.batch)
        build.wait_for(lambda: written_since(items, build.since) >= target)
    moment = {k: round(v, 2) for k, v in moment.items()}
    if not build.running():
        if anchor != "write":
            windows.observe(build, time.monotonic())
        return {"round": i, "anchor": anchor, **moment, "killed": False,
                "returncode": build.proc.returncode, "stored_before": before,
                "stored_after": items.count_documents({}), "children": 0, "left_behind": 0}
    phase = "embedding" if build.planned is not None else "starting"
    children, left = kill_and_check(build.proc, cfg.grace_s)
    return {"round": i, "anchor": anchor, **moment, "killed": True,
            "phase": phase, "stored_before": before, "stored_after": items.count_documents({}),
            "written_by_this_build": written_since(items, build.since),
            "children": len(children), "left_behind": len(left)}


def database_round(i: int, cfg: KillLoopConfig, builds: Builds, server: EmbeddedServer,
                   items, rng: random.Random) -> dict:
    """SIGKILL the database once the build has stored ``target`` items, fewer than its work
    minus one batch (so at least one write is still to come), then restart it after an
    outage; the build must ride it out."""
    target = rng.randint(1, cfg.db_change - cfg.batch)
    build = builds.start()
    if not build.wait_for(lambda: written_since(items, build.since) >= target):
        return {"round": i, "killed": False, "target_written": target,
                "returncode": build.proc.returncode}  # ended first: not a database round
    written_at_kill = written_since(items, build.since)
    pid = server.status().pid
    os.kill(pid, 9)
    while alive(pid):
        time.sleep(POLL_S)
    outage = rng.uniform(*cfg.outage_s)
    time.sleep(outage)  # the outage itself: the database stays down this long
    server.start()
    t_up = time.monotonic()
    build.proc.wait(timeout=600)
    text = build.log_text()
    return {"round": i, "killed": True, "target_written": target, "outage_s": round(outage, 2),
            "written_before_kill": written_at_kill,
            "written_by_this_build": written_since(items, build.since),
            "build_returncode": build.proc.returncode,
            "build_seconds_after_restart": round(time.monotonic() - t_up, 1),
            "retries_logged": text.count("database not answering"),
            "tracebacks": text.count("Traceback"),
            "error_lines": [ln for ln in text.splitlines() if ln.startswith("error:")]}


def verify(cfg: KillLoopConfig, catalog: FaultCatalog, items) -> dict:
    """Compare the store with the files: presence, uniqueness, hashes, vectors."""
    from model import load_retriever

    docs = {d["_id"]: d for d in items.find({}, {"sha256": 1, "embedding": 1, "image_path": 1,
                                                 "quarantined": 1})}
    wanted = set(catalog.ids)
    paths = [d.get("image_path") for d in docs.values()]
    stale_hash = [i for i in wanted & set(docs)
                  if docs[i]["sha256"] != file_sha256(catalog.path(i))]
    retriever = load_retriever(cfg.checkpoint)
    ids = sorted(wanted & set(docs))
    worst, stale_vectors = 0.0, []
    for start in range(0, len(ids), 32):
        chunk = ids[start:start + 32]
        fresh = retriever.encode_targets([load_image(catalog.path(i)) for i in chunk])
        for item_id, vec in zip(chunk, fresh, strict=True):
            diff = float(np.abs(from_binary(docs[item_id]["embedding"]) - vec).max())
            worst = max(worst, diff)
            if diff > 1e-3:
                stale_vectors.append(item_id)
    return {"catalog_items": len(wanted), "stored": len(docs),
            "lost": sorted(wanted - set(docs)), "unexpected": sorted(set(docs) - wanted),
            "duplicate_image_paths": len(paths) - len(set(paths)),
            "stale_sha256": sorted(stale_hash), "stale_vectors": sorted(stale_vectors),
            "max_vector_abs_diff": worst,
            "quarantined": sum(1 for d in docs.values() if d.get("quarantined"))}


def run_rounds(cfg: KillLoopConfig, catalog: FaultCatalog, builds: Builds, server, items,
               rng: random.Random) -> tuple[list[dict], list[dict], Windows]:
    """The indexer rounds (after a measured, unkilled one), then the database rounds.
    ``--kills`` and ``--db-kills`` count SIGKILLs, not rounds: a round whose build ended first
    is kept as a resume and another round follows, up to MAX_ROUNDS_PER_KILL per kill asked."""
    windows, measured = measure_round(cfg, catalog, builds, rng)
    log.info("unkilled build: %.1f s from start, %.1f s from its plan to its end",
             windows.start_to_end_s, windows.plan_to_end_s)
    indexer_rounds = [measured]
    while (sum(r["killed"] for r in indexer_rounds) < cfg.kills
           and len(indexer_rounds) <= MAX_ROUNDS_PER_KILL * cfg.kills):
        i = len(indexer_rounds)
        changed = cfg.db_change if ANCHORS[i % 3] == "write" else cfg.change
        catalog.change(rng.sample(catalog.ids, changed), rng)
        indexer_rounds.append(indexer_round(i, cfg, builds, windows, items, rng))
        log.info("indexer round %s", indexer_rounds[-1])
    db_rounds: list[dict] = []
    while (sum(r["killed"] for r in db_rounds) < cfg.db_kills
           and len(db_rounds) < MAX_ROUNDS_PER_KILL * cfg.db_kills):
        catalog.change(rng.sample(catalog.ids, cfg.db_change), rng)
        db_rounds.append(database_round(len(db_rounds) + 1, cfg, builds, server, items, rng))
        log.info("database round %s", db_rounds[-1])
    return indexer_rounds, db_rounds, windows


def summarise(indexer_rounds: list[dict], db_rounds: list[dict], checked: dict,
              seconds: float) -> dict:
    killed = [r for r in indexer_rounds if r["killed"]]
    db_killed = [r for r in db_rounds if r["killed"]]
    return {
        "indexer_rounds": len(indexer_rounds),
        "indexer_kills": len(killed),
        "indexer_kills_while_embedding": sum(r.get("phase") == "embedding" for r in killed),
        "indexer_kills_after_a_write": sum(r.get("written_by_this_build", 0) > 0
                                           for r in killed),
        "children_of_killed_builds": sum(r["children"] for r in killed),
        "processes_left_behind": sum(r["left_behind"] for r in killed),
        "database_rounds": len(db_rounds),
        "database_kills": len(db_killed),
        "database_kills_mid_build": sum(r["written_by_this_build"] > r["written_before_kill"]
                                        for r in db_killed),
        "builds_that_rode_out_the_outage": sum(r["build_returncode"] == 0
                                               and not r["tracebacks"] for r in db_killed),
        "tracebacks": sum(r["tracebacks"] for r in db_killed),
        "lost": len(checked["lost"]), "duplicated": checked["duplicate_image_paths"],
        "unexpected": len(checked["unexpected"]),
        "stale": len(set(checked["stale_sha256"]) | set(checked["stale_vectors"])),
        "seconds": round(seconds, 1),
    }


def run(cfg: KillLoopConfig) -> dict:
    rng = random.Random(cfg.seed)
    with temporary_server(cache_size="256M") as server, \
            tempfile.TemporaryDirectory(prefix="kill-loop-") as tmp:
        catalog = FaultCatalog(Path(tmp) / "shop", source=cfg.source, seed=cfg.seed)
        catalog.add(cfg.items)
        env = {**os.environ, "MONGO_URI": server.uri + "/?directConnection=true",
               "DB_NAME": "kill_loop", "COLLECTION_NAME": "catalog",
               "DATA_DIR": str(Path(tmp) / "data")}
        (Path(tmp) / "logs").mkdir()
        builds = Builds(cfg, catalog, env, Path(tmp) / "logs")
        client = pymongo.MongoClient(server.uri, directConnection=True,
                                     serverSelectionTimeoutMS=60_000)
        items = client["kill_loop"]["catalog"]
        t0 = time.monotonic()
        indexer_rounds, db_rounds, windows = run_rounds(cfg, catalog, builds, server, items,
                                                        rng)
        final = builds.start()  # the run to the end
        final_rc = final.proc.wait(timeout=1800)
        final_tail = final.log_text().splitlines()[-3:]
        checked = verify(cfg, catalog, items)
        builds_seen = [b.get("status") for b in
                       client["kill_loop"]["catalog_builds"].find({}, {"status": 1})]
        client.close()
        seconds = time.monotonic() - t0
    return {
        "config": {**asdict(cfg), "checkpoint": str(cfg.checkpoint), "source": str(cfg.source),
                   "out_dir": str(cfg.out_dir)},
        "kill_windows": {"start_to_end_s": round(windows.start_to_end_s, 2),
                         "plan_to_end_s": round(windows.plan_to_end_s, 2),
                         "share": windows.share, "shortened": windows.shortened},
        "indexer_rounds": indexer_rounds, "database_rounds": db_rounds,
        "final_build": {"returncode": final_rc, "tail": final_tail},
        "check": checked, "build_records": {s: builds_seen.count(s) for s in set(builds_seen)},
        "summary": summarise(indexer_rounds, db_rounds, checked, seconds),
    }


def floors_met(cfg: KillLoopConfig, report: dict) -> bool:
    """Every kill asked for happened, and nothing was lost, duplicated, stale or left behind."""
    s = report["summary"]
    return (s["indexer_kills"] == cfg.kills and s["database_kills"] == cfg.db_kills
            and s["lost"] == s["duplicated"] == s["unexpected"] == s["stale"] == 0
            and s["processes_left_behind"] == 0 and report["final_build"]["returncode"] == 0
            and s["builds_that_rode_out_the_outage"] == s["database_kills"])


def main(argv: list[str] | None = None) -> int:
    cfg, report, path = run_benchmark("kill_loop", argv, parse_args, run,
                                      module="tests.system.kill_loop")
    print(machine_line())
    print(table(list(report["summary"].items()), ("measure", "value")))
    print(f"floors ({cfg.kills} + {cfg.db_kills} kills, 0 lost, 0 duplicated, 0 left behind, "
          f"every outage ridden out): {'MET' if floors_met(cfg, report) else 'NOT MET'}; "
          f"written {path}")
    return 0 if floors_met(cfg, report) else 1


if __name__ == "__main__":
    sys.exit(main())
