"""Kill loop: index a catalog while SIGKILLing the build (20 times) and then the database
(5 times) at random moments, finish, and check that nothing was lost, duplicated or left behind.

    python -m bench.kill_loop --items 600 --kills 20 --db-kills 5 --checkpoint checkpoints/demo

Each indexer round changes a few images first (so every round has work and the final check
can tell a current vector from a stale one), starts ``python -m indexer build`` as a user
would, SIGKILLs only its main process at a random moment (like a crash or the OOM killer) and
then checks that every process it had started (the decoding workers) ends within
``--grace`` seconds by itself. Rounds go on until ``--kills`` builds were killed: a build that
finished before its moment came counts as a resume, not a kill. Each database round SIGKILLs
the embedded SecantusDB under a running build, keeps it down for a random outage and starts
it again; the build must ride it out. At the end one build runs to completion and the store
is compared with the files: every item exactly once (by id and by image path), with the
SHA-256 of its current file and the vector the checkpoint gives that file now. Runs on its
own SecantusDB on a free port and a temporary copy of demo-catalog items; prints a table
and writes bench/results/kill_loop.json.
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pymongo

from bench._common import RESULTS, machine_line, run_benchmark, table, temporary_server
from bench.fault_catalog import FaultCatalog, alive, kill_and_check
from imaging import file_sha256, load_image
from indexer import EmbeddedServer, from_binary
from project_settings import REPO_ROOT

log = logging.getLogger("bench.kill_loop")
MAX_ROUNDS_PER_KILL = 3  # bounds the run when builds keep finishing before their kill


@dataclass(frozen=True)
class KillLoopConfig:
    items: int = 600  # catalog size
    kills: int = 20  # SIGKILLs of the indexer
    db_kills: int = 5  # SIGKILLs of the database under a running build
    change: int = 25  # images changed before each indexer round
    db_change: int = 150  # images changed before each database round: several batches of
    # work, so the database dies under a build that still has writes to make
    min_delay_s: float = 1.0  # a kill lands uniformly between these after the build starts
    max_delay_s: float = 16.0
    embed_window_s: float = 8.0  # even rounds: kill within this long after the first write
    outage_s: tuple[float, float] = (1.0, 10.0)  # database down for a uniform time in this
    grace_s: float = 5.0  # children of a killed build must be gone this long after the kill
    workers: int = 2
    checkpoint: Path = REPO_ROOT / "checkpoints" / "demo"
    seed: int = 0
    out_dir: Path = RESULTS


def parse_args(argv: list[str]) -> KillLoopConfig:
    p = argparse.ArgumentParser(prog="python -m bench.kill_loop", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=600)
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--db-kills", type=int, default=5)
    p.add_argument("--change", type=int, default=25)
    p.add_argument("--db-change", type=int, default=150)
    p.add_argument("--max-delay", type=float, default=16.0)
    p.add_argument("--grace", type=float, default=5.0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--checkpoint", type=Path, default=REPO_ROOT / "checkpoints" / "demo")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    a = p.parse_args(argv)
    return KillLoopConfig(items=a.items, kills=a.kills, db_kills=a.db_kills, change=a.change,
                          db_change=a.db_change,
                          max_delay_s=a.max_delay, grace_s=a.grace, workers=a.workers,
                          checkpoint=a.checkpoint, seed=a.seed, out_dir=a.out_dir)


class Builds:
    """Starts ``python -m indexer build`` on the catalog, as a user would."""

    def __init__(self, cfg: KillLoopConfig, catalog: FaultCatalog, env: dict[str, str],
                 logs: Path):
        self.cfg, self.catalog, self.env, self.logs = cfg, catalog, env, logs
        self.n = 0

    def start(self) -> tuple[subprocess.Popen, Path]:
        self.n += 1
        log_path = self.logs / f"build{self.n:02d}.log"
        with log_path.open("wb") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "indexer", "build", "--images", str(self.catalog.root),
                 "--checkpoint", str(self.cfg.checkpoint), "--workers", str(self.cfg.workers),
                 "--no-progress"], cwd=REPO_ROOT, env=self.env, stdout=fh,
                stderr=subprocess.STDOUT)
        return proc, log_path


def written_since(items, since: dt.datetime) -> int:
    """Documents this round's build has written so far."""
    return items.count_documents({"indexed_at": {"$gte": since}})


def wait_first_write(proc: subprocess.Popen, items, since: dt.datetime) -> None:
    """Until the build has stored its first batch (or ended): a kill after this lands between
    writes, with decoding workers running and batches in flight."""
    while proc.poll() is None and not written_since(items, since):
        time.sleep(0.05)


def indexer_round(i: int, cfg: KillLoopConfig, builds: Builds, items, rng) -> dict:
    """Odd rounds kill at any moment after the start (imports, model load, hashing, planning
    included); even rounds wait until the build has stored its first batch and kill at a
    random moment after that, while it decodes, embeds and writes."""
    before = items.count_documents({})
    since = dt.datetime.now(dt.UTC)
    proc, log_path = builds.start()
    if i % 2 == 0:
        wait_first_write(proc, items, since)
        delay = rng.uniform(0.0, cfg.embed_window_s)
    else:
        delay = rng.uniform(cfg.min_delay_s, cfg.max_delay_s)
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    if proc.poll() is not None:
        return {"round": i, "delay_s": round(delay, 2), "killed": False, "returncode":
                proc.returncode, "stored_before": before, "stored_after":
                items.count_documents({}), "children": 0, "left_behind": 0}
    text = log_path.read_text(errors="replace")
    phase = "embedding" if "to embed" in text else "starting"
    children, left = kill_and_check(proc, cfg.grace_s)
    return {"round": i, "delay_s": round(delay, 2), "killed": True, "phase": phase,
            "stored_before": before, "stored_after": items.count_documents({}),
            "written_by_this_build": written_since(items, since),
            "children": len(children), "left_behind": len(left)}


def database_round(i: int, cfg: KillLoopConfig, builds: Builds, server: EmbeddedServer,
                   items, rng) -> dict:
    since = dt.datetime.now(dt.UTC)
    proc, log_path = builds.start()
    wait_first_write(proc, items, since)
    time.sleep(rng.uniform(0.0, 3.0))
    if proc.poll() is not None:  # finished before the kill: not a database round at all
        return {"round": i, "killed": False, "returncode": proc.returncode}
    written_at_kill = written_since(items, since)
    pid = server.status().pid
    os.kill(pid, 9)
    while alive(pid):
        time.sleep(0.02)
    outage = rng.uniform(*cfg.outage_s)
    time.sleep(outage)
    server.start()
    t_up = time.monotonic()
    proc.wait(timeout=600)
    text = log_path.read_text(errors="replace")
    return {"round": i, "killed": True, "outage_s": round(outage, 2),
            "written_before_kill": written_at_kill,
            "written_by_this_build": written_since(items, since),
            "build_returncode": proc.returncode,
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


def run(cfg: KillLoopConfig) -> dict:
    rng = random.Random(cfg.seed)
    with temporary_server(cache_size="256M") as server, \
            tempfile.TemporaryDirectory(prefix="bench-kill-loop-") as tmp:
        catalog = FaultCatalog(Path(tmp) / "shop", seed=cfg.seed)
        catalog.add(cfg.items)
        env = {**os.environ, "MONGO_URI": server.uri + "/?directConnection=true",
               "DB_NAME": "bench_kill_loop", "COLLECTION_NAME": "catalog",
               "DATA_DIR": str(Path(tmp) / "data")}
        (Path(tmp) / "logs").mkdir()
        builds = Builds(cfg, catalog, env, Path(tmp) / "logs")
        client = pymongo.MongoClient(server.uri, directConnection=True,
                                     serverSelectionTimeoutMS=60_000)
        items = client["bench_kill_loop"]["catalog"]
        t0 = time.monotonic()
        indexer_rounds = []
        # --kills counts SIGKILLs, not rounds: a build can finish before its random moment
        # comes (25 changed images take a few seconds), and that round is kept as a resume.
        while (sum(r["killed"] for r in indexer_rounds) < cfg.kills
               and len(indexer_rounds) < MAX_ROUNDS_PER_KILL * cfg.kills):
            catalog.change(rng.sample(catalog.ids, cfg.change), rng)
            indexer_rounds.append(indexer_round(len(indexer_rounds) + 1, cfg, builds, items,
                                                rng))
            log.info("indexer round %s", indexer_rounds[-1])
        db_rounds = []
        for i in range(cfg.db_kills):
            catalog.change(rng.sample(catalog.ids, cfg.db_change), rng)
            db_rounds.append(database_round(i + 1, cfg, builds, server, items, rng))
            log.info("database round %s", db_rounds[-1])
        proc, log_path = builds.start()  # the run to the end
        final_rc = proc.wait(timeout=1800)
        final_tail = log_path.read_text(errors="replace").splitlines()[-3:]
        checked = verify(cfg, catalog, items)
        builds_seen = [b.get("status") for b in
                       client["bench_kill_loop"]["catalog_builds"].find({}, {"status": 1})]
        client.close()
        seconds = time.monotonic() - t0
    killed = [r for r in indexer_rounds if r["killed"]]
    return {
        "config": {**cfg.__dict__, "checkpoint": str(cfg.checkpoint),
                   "out_dir": str(cfg.out_dir)},
        "indexer_rounds": indexer_rounds, "database_rounds": db_rounds,
        "final_build": {"returncode": final_rc, "tail": final_tail},
        "check": checked, "build_records": {s: builds_seen.count(s) for s in set(builds_seen)},
        "summary": {
            "indexer_rounds": len(indexer_rounds),
            "indexer_kills": len(killed),
            "indexer_kills_while_embedding": sum(r.get("phase") == "embedding" for r in killed),
            "indexer_kills_after_a_write": sum(r.get("written_by_this_build", 0) > 0
                                               for r in killed),
            "children_of_killed_builds": sum(r["children"] for r in killed),
            "processes_left_behind": sum(r["left_behind"] for r in killed),
            "database_kills": sum(r["killed"] for r in db_rounds),
            "database_kills_mid_build": sum(r.get("killed", False) and r.get(
                "build_seconds_after_restart", 0) > 0 and r.get("written_by_this_build", 0) >
                r.get("written_before_kill", 0) for r in db_rounds),
            "builds_that_rode_out_the_outage": sum(r.get("build_returncode") == 0
                                                   for r in db_rounds),
            "tracebacks": sum(r.get("tracebacks", 0) for r in db_rounds),
            "lost": len(checked["lost"]), "duplicated": checked["duplicate_image_paths"],
            "unexpected": len(checked["unexpected"]),
            "stale": len(set(checked["stale_sha256"]) | set(checked["stale_vectors"])),
            "seconds": round(seconds, 1),
        },
    }


def main(argv: list[str] | None = None) -> int:
    cfg, report, path = run_benchmark("kill_loop", argv, parse_args, run)
    s = report["summary"]
    print(machine_line())
    print(table([(k, v) for k, v in s.items()], ("measure", "value")))
    ok = (s["indexer_kills"] == cfg.kills and s["database_kills"] == cfg.db_kills
          and s["lost"] == s["duplicated"] == s["unexpected"] == s["stale"] == 0
          and s["processes_left_behind"] == 0 and report["final_build"]["returncode"] == 0
          and s["builds_that_rode_out_the_outage"] == s["database_kills"])
    print(f"floors ({cfg.kills} + {cfg.db_kills} kills, 0 lost, 0 duplicated, 0 left behind, "
          f"every outage ridden out): "
          f"{'MET' if ok else 'NOT MET'}; written {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
