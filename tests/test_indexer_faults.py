"""Faults during a build, against real processes: the build SIGKILLed (its decoding workers
must not outlive it), the database SIGKILLed under it (ridden out, or one clear message and a
resumable state), and an image that turns corrupt after it was indexed (out of search, back in
when repaired)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pymongo
import pytest
from conftest import REPO_ROOT, free_port, write_catalog

from indexer import (
    BuildConfig,
    CatalogSearch,
    CatalogStore,
    EmbeddedConfig,
    EmbeddedServer,
    build_index,
    discover,
)
from model import load_retriever
from tests.system.fault_catalog import alive, descendants


def start_build(images: Path, checkpoint: Path, env: dict[str, str], *extra: str,
                workers: int = 0) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "indexer", "build", "--images", str(images), "--checkpoint",
         str(checkpoint), "--batch", "2", "--workers", str(workers), "--no-progress", *extra],
        cwd=REPO_ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)


def wait_for_documents(collection, n: int, proc: subprocess.Popen, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        count = collection.count_documents({})
        if count >= n:
            return count
        time.sleep(0.02)
    raise AssertionError(f"the build stored fewer than {n} documents before ending: "
                         f"{proc.poll()} {proc.stderr.read()[-2000:] if proc.stderr else ''}")


# A consumer that reads one batch and then stalls (as the main process does while the model
# runs): the workers fill the result pipe, then block writing to it. Killed there, torch's own
# watchdog sees the parent gone within 5 s but the worker then hangs flushing the full pipe:
# that is how builds leaked their workers. Run as a separate process so it can be SIGKILLed.
STALLED_CONSUMER = """
import sys, time
from pathlib import Path
import numpy as np, torch
from imaging import decode_batches

def preprocess(image):
    return torch.from_numpy(np.asarray(image.resize((224, 224)), np.float32))

paths = sorted(Path(sys.argv[1]).glob("*.jpg"))
batches = iter(decode_batches(paths, preprocess, batch_size=32, workers=2))
next(batches)
# every batch the workers were asked for is decoded and queued to this stalled process
while batches._worker_result_queue.qsize() < batches._tasks_outstanding:
    time.sleep(0.05)
print("first batch", flush=True)
time.sleep(600)
"""


@pytest.mark.slow
def test_a_sigkilled_build_leaves_no_decoding_worker_behind(tmp_path):
    write_catalog(tmp_path, 400, size=256)
    proc = subprocess.Popen([sys.executable, "-c", STALLED_CONSUMER, str(tmp_path / "images")],
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "first batch"  # the workers' results are queued
    workers = descendants(proc.pid)
    assert len(workers) >= 2, "two decoding workers run"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 60  # a hang guard: a fixed build's workers go at once
    while time.monotonic() < deadline and any(alive(p) for p in workers):
        time.sleep(0.1)
    left = [p for p in workers if alive(p)]
    for pid in left:  # do not leak them from the test either
        os.kill(pid, signal.SIGKILL)
    assert not left, "decoding workers outlived their killed parent"


def test_the_indexer_build_passes_the_parent_watch_to_its_workers(tmp_path):
    """The same protection on the indexer's own decoder: a worker's init asks for it."""
    from imaging.decoding import decode_batches

    loader = decode_batches([tmp_path / "x.jpg"], lambda im: im, batch_size=1, workers=1)
    assert loader.worker_init_fn is not None
    assert loader.worker_init_fn.args == (os.getpid(),)


@pytest.fixture
def own_server(tmp_path):
    """A server this test may SIGKILL (the session's server is shared)."""
    server = EmbeddedServer(EmbeddedConfig(home=tmp_path / "db", port=free_port(),
                                           cache_size="64M"))
    server.start()
    yield server
    server.stop()


def kill_server(server: EmbeddedServer) -> None:
    pid = server.status().pid
    assert pid
    os.kill(pid, signal.SIGKILL)
    while alive(pid):
        time.sleep(0.05)


@pytest.mark.slow
def test_a_build_rides_out_a_database_restart(tmp_path, tiny_checkpoint, own_server):
    ids = write_catalog(tmp_path, 60, size=160)
    env = {"MONGO_URI": own_server.uri + "/?directConnection=true", "DB_NAME": "shop",
           "COLLECTION_NAME": "catalog", "DATA_DIR": str(tmp_path / "data")}
    client = pymongo.MongoClient(own_server.uri, directConnection=True,
                                 serverSelectionTimeoutMS=20000)
    items = client["shop"]["catalog"]
    proc = start_build(tmp_path / "images", tiny_checkpoint, env, "--db-wait", "60")
    wait_for_documents(items, 6, proc)
    kill_server(own_server)
    seen = []  # the server comes back once the build has logged a failed try (a server
    for line in proc.stderr:  # selection timed out) and is retrying: it must ride that out
        seen.append(line)
        if "database not answering" in line:
            break
    own_server.start()
    out, err = proc.communicate(timeout=300)
    err = "".join(seen) + err
    assert proc.returncode == 0, err[-3000:]
    assert "database not answering" in err and "Traceback" not in err
    assert sorted(d["_id"] for d in items.find({}, {"_id": 1})) == ids  # none lost, none twice
    client.close()


@pytest.mark.slow
def test_a_long_database_outage_ends_the_build_with_one_message_and_it_resumes(
        tmp_path, tiny_checkpoint, own_server):
    ids = write_catalog(tmp_path, 80, size=160)
    env = {"MONGO_URI": own_server.uri + "/?directConnection=true",
           "DB_NAME": "shop", "COLLECTION_NAME": "catalog", "DATA_DIR": str(tmp_path / "data")}
    client = pymongo.MongoClient(own_server.uri, directConnection=True,
                                 serverSelectionTimeoutMS=20000)
    items = client["shop"]["catalog"]
    proc = start_build(tmp_path / "images", tiny_checkpoint, env, "--db-wait", "3")
    stored = wait_for_documents(items, 6, proc)
    kill_server(own_server)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err
    assert "the database stopped answering during the build" in errors[0]
    assert "run the same command" in errors[0] and "resumes" in errors[0]
    own_server.start()
    assert items.count_documents({}) >= stored
    proc = start_build(tmp_path / "images", tiny_checkpoint, env)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert sorted(d["_id"] for d in items.find({}, {"_id": 1})) == ids
    client.close()


def test_an_image_corrupt_after_indexing_leaves_search_until_it_is_repaired(
        tmp_path, tiny_checkpoint, mongo_collection):
    encoder = load_retriever(tiny_checkpoint)
    ids = write_catalog(tmp_path, 6, size=96)
    store = CatalogStore.from_collection(mongo_collection)
    config = BuildConfig(progress=False, workers=0, batch_size=4)
    build_index(discover(tmp_path / "images"), encoder, store, config)
    victim = tmp_path / "images" / f"{ids[2]}.jpg"
    original = victim.read_bytes()
    victim.write_bytes(original[: len(original) // 3])  # truncated: no longer decodes

    report = build_index(discover(tmp_path / "images"), encoder, store, config)
    assert (report.failed, report.quarantined) == (1, 1)
    assert report.failures[0]["id"] == ids[2]
    search = CatalogSearch(store, encoder.fingerprint)
    assert search.size == 5 and ids[2] not in set(search.ids)
    assert mongo_collection.count_documents({}) == 6  # flagged, not deleted

    victim.write_bytes(original)  # repaired: the stored vector is right again
    report = build_index(discover(tmp_path / "images"), encoder, store, config)
    assert report.failed == 0 and report.embedded == 0
    assert search.refresh() and search.size == 6 and ids[2] in set(search.ids)
    assert mongo_collection.count_documents({"quarantined": {"$exists": True}}) == 0


class FakeClock:
    """Stands in for ``time`` in indexer.retry: a pause moves the clock on, nobody waits, so
    the number of tries depends on the policy alone, not on how busy the machine is."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    from indexer import retry

    fake = FakeClock()
    monkeypatch.setattr(retry, "time", fake)
    return fake


def test_retries_ride_out_connection_failures_and_stop_after_the_wait(clock):
    from pymongo.errors import AutoReconnect, DuplicateKeyError

    from indexer.retry import DatabaseOutage, RetryPolicy, call_with_retry

    fast = RetryPolicy(wait_s=0.3, first_delay_s=0.01, max_delay_s=0.05)
    failures = iter([AutoReconnect("down"), AutoReconnect("still down")])

    def flaky():
        exc = next(failures, None)
        if exc is not None:
            raise exc
        return "stored"

    assert call_with_retry(flaky, "a write", fast) == "stored"
    calls = []

    def down():
        calls.append(clock.monotonic())
        raise AutoReconnect("gone")

    with pytest.raises(DatabaseOutage) as err:
        call_with_retry(down, "a write", fast)
    assert len(calls) >= 9 and calls[-1] - calls[0] == pytest.approx(0.3)  # the whole wait
    assert "AutoReconnect" in str(err.value)

    def bad_document():
        calls.append(0)
        raise DuplicateKeyError("not an outage")

    calls.clear()
    with pytest.raises(DuplicateKeyError):
        call_with_retry(bad_document, "a write", fast)
    assert calls == [0]  # not retried


def test_a_long_outage_warns_a_handful_of_times_not_once_per_retry(caplog, clock):
    import logging

    from pymongo.errors import AutoReconnect

    from indexer.retry import DatabaseOutage, RetryPolicy, call_with_retry

    # The app's policy: short, fixed pauses, so a long outage means many retries.
    fixed = RetryPolicy(wait_s=0.5, first_delay_s=0.005, max_delay_s=0.005)
    attempts = []

    def down():
        attempts.append(1)
        raise AutoReconnect("gone")

    with caplog.at_level(logging.DEBUG, logger="indexer.retry"), pytest.raises(DatabaseOutage):
        call_with_retry(down, "a shopper's action", fixed)
    retries = [r for r in caplog.records if "database not answering" in r.getMessage()]
    warnings = [r.getMessage() for r in retries if r.levelno == logging.WARNING]
    assert len(attempts) >= 10 and len(retries) == len(attempts) - 1  # every retry is logged
    assert 3 <= len(warnings) <= len(attempts).bit_length()  # retries 1, 2, 4, 8, ... warn
    assert "retry 1 " in warnings[0] and "retry 2 " in warnings[1] and "retry 4 " in warnings[2]
