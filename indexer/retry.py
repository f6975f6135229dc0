"""Riding out a short database outage: bounded retries with exponential backoff.

Why: a build writes for minutes; a database restart in the middle (a crash, a deploy, the
embedded server killed) used to end it with a raw pymongo traceback 15 s later. Writes of the
indexer are idempotent upserts, so repeating one after a connection failure is always safe;
only when the database stays away longer than the allowed wait does the build stop, with one
message saying what happened and that the same command resumes. The app's actions wait
through an outage with the same loop (``app.pipeline.wait_for_database``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import pymongo.errors

log = logging.getLogger(__name__)

T = TypeVar("T")

# Connection-level failures (server gone, refused, timed out, primary lost): worth a retry.
# Anything else (a bad document, a permission error) is not an outage and fails at once.
TRANSIENT_ERRORS = (pymongo.errors.ConnectionFailure,)


@dataclass(frozen=True)
class RetryPolicy:
    wait_s: float = 60.0  # total time one operation may wait for the database to come back
    first_delay_s: float = 0.5  # first pause between attempts, doubled after each failure
    max_delay_s: float = 5.0  # longest pause between attempts


class DatabaseOutage(Exception):
    """The database did not answer within ``RetryPolicy.wait_s``; ``cause`` is the last error."""

    def __init__(self, what: str, waited_s: float, cause: BaseException):
        super().__init__(f"{what}: no answer for {waited_s:.0f} s ({type(cause).__name__})")
        self.what, self.waited_s, self.cause = what, waited_s, cause


def call_with_retry(fn: Callable[[], T], what: str, policy: RetryPolicy = RetryPolicy(), *,
                    transient: tuple[type[BaseException], ...] = TRANSIENT_ERRORS,
                    on_first_failure: Callable[[], None] | None = None) -> T:
    """``fn()``, repeated after ``transient`` failures until ``policy.wait_s`` has passed.

    ``on_first_failure`` runs once, before the first pause (the app says "reconnecting")."""
    start = time.monotonic()
    delay = policy.first_delay_s
    attempt = 0
    while True:
        try:
            result = fn()
        except transient as exc:
            attempt += 1
            waited = time.monotonic() - start
            if waited >= policy.wait_s:
                raise DatabaseOutage(what, waited, exc) from exc
            pause = min(delay, policy.max_delay_s, max(0.0, policy.wait_s - waited))
            # Retry 1, 2, 4, 8, ... warn; the rest are debug lines. An outage of any length
            # then leaves a handful of warnings (the app retries twice a second) that still
            # show how long it lasted.
            level = logging.WARNING if attempt & (attempt - 1) == 0 else logging.DEBUG
            log.log(level, "database not answering (%s during %s); retry %d in %.1f s "
                    "(giving up after %.0f s)", type(exc).__name__, what, attempt, pause,
                    policy.wait_s)
            if attempt == 1 and on_first_failure is not None:
                on_first_failure()
            time.sleep(pause)
            delay *= 2
            continue
        if attempt:
            log.info("database answers again after %.1f s; %s done",
                     time.monotonic() - start, what)
        return result
