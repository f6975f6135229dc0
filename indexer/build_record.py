"""The record of one index build in the builds collection, and how to read a stale one.

A build writes "running" with its host, pid and a heartbeat, and ends as "done", "failed" or
"interrupted". A SIGKILLed or crashed process cannot write its own end, so a record is judged
by its heartbeat and process: a later build on the same host marks records of dead processes
"killed", and ``effective_status`` calls any running record without a recent heartbeat
"stale" (the build may have died on another machine, or lost the database).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
from typing import TYPE_CHECKING

from bson import ObjectId

from indexer.connect import CatalogStore

if TYPE_CHECKING:  # build.py imports this module
    from indexer.build import BuildReport

log = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 5.0  # at most one heartbeat write per this many seconds
STALE_AFTER = dt.timedelta(minutes=10)  # running without a heartbeat this long: "stale"


class BuildRecord:
    """Writes one build's record: start, throttled heartbeats with progress, finish."""

    def __init__(self, store: CatalogStore, build_id: str):
        self.builds, self.id = store.builds, ObjectId(build_id)
        self._last_beat = 0.0

    def start(self, fields: dict) -> None:
        now = utc_now()
        self.builds.insert_one({"_id": self.id, "status": "running", "host": socket.gethostname(),
                                "pid": os.getpid(), "started_at": now, "heartbeat_at": now,
                                **fields})
        self.builds.create_index([("status", 1), ("finished_at", -1)])
        self._last_beat = time.monotonic()

    def heartbeat(self, report: BuildReport) -> None:
        if time.monotonic() - self._last_beat < HEARTBEAT_EVERY_S:
            return
        self.builds.update_one({"_id": self.id}, {"$set": {"heartbeat_at": utc_now(),
                                                           "counts": report.counts()}})
        self._last_beat = time.monotonic()

    def finish(self, status: str, report: BuildReport, error: str | None = None) -> None:
        fields = {"status": status, "finished_at": utc_now(), "seconds": round(report.seconds, 3),
                  "counts": report.counts(), "failures": report.failures,
                  "replaced_other_dim": report.replaced_other_dim, "pruned": report.pruned,
                  "total_for_fingerprint": report.total_for_fingerprint}
        if error is not None:
            fields["error"] = error
        try:
            self.builds.update_one({"_id": self.id}, {"$set": fields})
        except Exception as exc:  # noqa: BLE001 -- never hide the error that ended the build
            if status == "done":
                raise
            log.warning("could not record the build as %s: %s", status, exc)


def mark_dead_builds(store: CatalogStore) -> int:
    """Mark "killed" the running records of this host whose process no longer exists."""
    host, killed = socket.gethostname(), 0
    for rec in store.builds.find({"status": "running", "host": host}, {"pid": 1}):
        if not _alive(rec.get("pid")):
            killed += store.builds.update_one(
                {"_id": rec["_id"], "status": "running"},
                {"$set": {"status": "killed", "finished_at": utc_now()}}).modified_count
    if killed:
        log.info("%d earlier build(s) on this host were killed before finishing", killed)
    return killed


def effective_status(record: dict, now: dt.datetime | None = None) -> str:
    """The record's status, with "stale" for a running build whose heartbeat stopped."""
    status = record.get("status", "unknown")
    beat = record.get("heartbeat_at") or record.get("started_at")
    if status == "running" and beat is not None:
        if beat.tzinfo is None:  # pymongo returns naive UTC datetimes by default
            beat = beat.replace(tzinfo=dt.UTC)
        if (now or utc_now()) - beat > STALE_AFTER:
            return "stale"
    return status


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
