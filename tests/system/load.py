"""Load under faults: N concurrent shoppers in Chromium while the catalog is rebuilt, the
database restarts and the app process is killed and started again.

    python -m tests.system.load --sessions 20 --duration 300 --checkpoint checkpoints/demo

Each session (one browser context of one headless Chromium, loopback only) opens the page,
uploads a reference photo and then loops search -> refine -> search -> back, with a short
pause between actions. Chromium runs at ``--browser-nice`` (10): shoppers' browsers are not on
the server, here they share its cores. Meanwhile, at fixed times:

(a) rebuild: new items are added to the catalog folder and ``python -m indexer build`` runs;
    the app must pick up the new build (the sidebar's item count is read after every action);
(b) database restart: the embedded SecantusDB is SIGKILLed, stays down ``--db-down`` seconds
    and is started again;
(c) app restart: the whole ``bash run_app.sh`` process group is SIGKILLed and started again.

Every action waits for its own outcome in the page (its results caption, the new reference,
the earlier step) or for what the page shows instead (an error alert, a reset page, the
"Connection error" dialog). Reported: p50/p95 per action kind, every message a session saw
(classed by the fault window it fell in), how long each session took to answer again after
the database came back, whether the app reloaded the rebuilt catalog, whether any session
lost its chain of turns while the server stayed up, and the actions lost with the app.
Prints a table, writes bench/results/load/<fingerprint>.json. Bounded: at most ``--sessions``
contexts (40 at most), for ``--duration`` seconds, stretched to ``--tail`` (45 s) after the app
restart but never beyond 1.5x. ``tests/test_system_load.py`` runs it short (2 sessions, a tiny
model, faults seconds apart) in the full ``bash run_tests.sh``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pymongo

from bench._common import (
    RESULTS,
    free_port,
    machine_line,
    percentiles,
    run_benchmark,
    table,
    temporary_server,
)
from project_settings import DEFAULT_CHECKPOINT, REPO_ROOT
from tests.system.fault_catalog import DEMO_CATALOG, FaultCatalog, alive

log = logging.getLogger("tests.system.load")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage"]
PHRASES = ["in navy", "with long sleeves", "in red", "is shorter", "with a floral pattern",
           "sleeveless", "in black", "with a v-neck", "in green", "is longer"]
ACTION_TIMEOUT_S = 90.0
RESTART_GRACE_S = 30.0  # after the app is up again, its pages are still reconnecting

# Installed before each action: records that the page changed since (any text or element came
# or went, or the script-state attribute moved), and whether a script run showed itself
# (Streamlit sets data-test-script-state while a run streams elements). The attribute alone
# missed runs: a busy renderer can commit "running" and "notRunning" in one frame, so the page
# showed the outcome while the flag stayed false. Error alerts already on the page are marked:
# without a run seen, only a new alert is this action's error (typing into the feedback box
# changes the page while the previous action's alert is still shown).
ARM = """() => {
  window.__changed = false;
  window.__ran = false;
  document.querySelectorAll('[data-testid="stAlertContentError"]')
    .forEach(e => { e.dataset.benchSeen = '1'; });
  if (window.__watch) window.__watch.disconnect();
  window.__watch = new MutationObserver(records => {
    window.__changed = true;
    if (records.some(r => r.type === 'attributes')) window.__ran = true;
  });
  window.__watch.observe(document.body, {subtree: true, childList: true, characterData: true,
                                         attributeFilter: ['data-test-script-state']});
}"""
# Polled in the page: the action's outcome once its run finished, else null.
OUTCOME = """([success, need, fresh, absent]) => {
  const app = document.querySelector('[data-testid="stApp"]');
  const text = document.body.textContent;
  if (text.includes('Connection error')) return {kind: 'connection', text: 'Connection error'};
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return null;
  if (!fresh && !window.__changed) return null;
  const steps = document.querySelectorAll('[class*="st-key-step_"]').length;
  const metric = document.querySelector('[data-testid="stMetricValue"]');
  const items = metric ? metric.textContent : null;
  const errors = [...document.querySelectorAll('[data-testid="stAlertContentError"]')]
    .filter(e => fresh || window.__ran || !e.dataset.benchSeen)
    .map(e => e.textContent.trim()).filter(t => t);
  if (text.includes(success) && (need === null || steps === need) &&
      (absent === null || !text.includes(absent)))
    return {kind: 'ok', steps, items, errors};
  if (errors.length) return {kind: 'error', text: errors.join(' | '), steps, items};
  // No reference any more: a new server session (the app restarted). An upload passes
  // through such runs while the file travels, so it waits for its own outcome instead.
  if (success.indexOf('Reference: ref_') !== 0 &&
      text.includes('Upload a photo, or pick a random catalog item, to start.'))
    return {kind: 'reset', steps, items};
  return null;
}"""

# Read when an action timed out: enough of the page to tell a lost click from a slow server.
STATE = r"""(success) => {
  const app = document.querySelector('[data-testid="stApp"]');
  const text = document.body.textContent;
  return {script: app ? app.getAttribute('data-test-script-state') : null,
          changed: !!window.__changed, ran: !!window.__ran, success: text.includes(success),
          steps: document.querySelectorAll('[class*="st-key-step_"]').length,
          status: (document.querySelector('[data-testid="stStatusWidget"]') || {}).textContent,
          text: app ? app.innerText.replace(/\s+/g, ' ').slice(0, 500) : null};
}"""


@dataclass(frozen=True)
class LoadConfig:
    sessions: int = 20
    duration_s: float = 300.0
    catalog_items: int = 300  # indexed before the sessions start
    rebuild_items: int = 60  # added by the rebuild
    rebuild_at_s: float = 60.0
    db_restart_at_s: float = 130.0
    db_down_s: float = 5.0
    app_restart_at_s: float = 200.0
    think_s: tuple[float, float] = (0.5, 2.0)  # pause between a session's actions
    ramp_s: float = 30.0  # sessions start spread over this long
    gap_s: float = 30.0  # at least this long between one fault's end and the next one
    tail_s: float = 45.0  # sessions go on at least this long after the app is back
    checkpoint: Path = Path(DEFAULT_CHECKPOINT)
    source: Path = DEMO_CATALOG  # the catalog whose items are copied in
    seed: int = 0
    out_dir: Path = RESULTS
    # Shoppers' browsers run on their own devices, not on the server: here the 20 renderers
    # share its two cores, so they run at this niceness (0: as the app) to load it no more
    # than the traffic they send would.
    browser_nice: int = 10


def parse_args(argv: list[str]) -> LoadConfig:
    p = argparse.ArgumentParser(prog="python -m tests.system.load", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--duration", type=float, default=300.0)
    p.add_argument("--catalog-items", type=int, default=300)
    p.add_argument("--rebuild-items", type=int, default=60)
    p.add_argument("--rebuild-at", type=float, default=60.0)
    p.add_argument("--db-restart-at", type=float, default=130.0)
    p.add_argument("--db-down", type=float, default=5.0)
    p.add_argument("--app-restart-at", type=float, default=200.0)
    p.add_argument("--ramp", type=float, default=30.0)
    p.add_argument("--gap", type=float, default=30.0,
                   help="at least this long between one fault's end and the next one")
    p.add_argument("--tail", type=float, default=45.0,
                   help="sessions go on at least this long after the app is back")
    p.add_argument("--checkpoint", type=Path, default=Path(DEFAULT_CHECKPOINT))
    p.add_argument("--source", type=Path, default=DEMO_CATALOG,
                   help="catalog folder (images/ + metadata.csv) the items are copied from")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", type=Path, default=RESULTS, help="results root")
    p.add_argument("--browser-nice", type=int, default=10,
                   help="niceness of Chromium and its renderers (0: the same as the app)")
    a = p.parse_args(argv)
    if not 1 <= a.sessions <= 40:
        p.error("--sessions must be between 1 and 40 (one 2-core machine)")
    if not 10 <= a.duration <= 1800:
        p.error("--duration must be between 10 and 1800 seconds")
    return LoadConfig(sessions=a.sessions, duration_s=a.duration,
                      catalog_items=a.catalog_items, rebuild_items=a.rebuild_items,
                      rebuild_at_s=a.rebuild_at, db_restart_at_s=a.db_restart_at,
                      db_down_s=a.db_down, app_restart_at_s=a.app_restart_at, ramp_s=a.ramp,
                      gap_s=a.gap, tail_s=a.tail, checkpoint=a.checkpoint, source=a.source,
                      seed=a.seed, out_dir=a.out_dir,
                      browser_nice=a.browser_nice)


# ---- the app process ---------------------------------------------------------------------

@dataclass
class App:
    """``bash run_app.sh`` in its own process group, as a user starts it."""

    env: dict[str, str]
    port: int
    logs: Path
    checkpoint: Path
    proc: subprocess.Popen | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 300) -> float:
        self.starts += 1
        log_path = self.logs / f"app{self.starts}.log"
        t0 = time.monotonic()
        with log_path.open("wb") as fh:
            self.proc = subprocess.Popen(
                ["bash", "run_app.sh", "--port", str(self.port), "--checkpoint",
                 str(self.checkpoint)], cwd=REPO_ROOT, env=self.env, stdout=fh,
                stderr=subprocess.STDOUT, start_new_session=True)
        while time.monotonic() - t0 < timeout_s:
            if "[app] serving at" in log_path.read_text(errors="replace"):
                return time.monotonic() - t0
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise SystemExit(f"run_app.sh did not serve:\n{log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the whole group: run_app.sh and the Streamlit server (not the database,
        which runs in its own session)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


# ---- what happened, and when -------------------------------------------------------------

@dataclass
class Timeline:
    t0: float = field(default_factory=time.monotonic)
    events: dict[str, float] = field(default_factory=dict)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def mark(self, name: str) -> None:
        self.events[name] = round(self.now(), 2)
        log.info("t=%.1f s: %s", self.events[name], name)

    def overlaps_app_restart(self, start: float, end: float) -> bool:
        """True when [start, end] overlaps the time the app was down or its page was still
        reconnecting (``RESTART_GRACE_S`` after it was up, as ``window`` counts): a page reset
        or a lost click then comes from the restart, even when the action only ended long after
        it (a click sent just after the restart, before the page reconnected, never answers)."""
        e = self.events
        return ("app_killed" in e and start <= e.get("app_up", 1e9) + RESTART_GRACE_S
                and end >= e["app_killed"])

    def window(self, t: float) -> str:
        """Which fault a moment falls in (for classing what a session saw)."""
        e = self.events
        if "db_killed" in e and e["db_killed"] <= t <= e.get("db_up", 1e9) + 10:
            return "database down"
        if "app_killed" in e and e["app_killed"] <= t <= e.get("app_up", 1e9) + RESTART_GRACE_S:
            return "app restart"
        if "rebuild_started" in e and e["rebuild_started"] <= t <= e.get("rebuild_done",
                                                                         1e9) + 10:
            return "rebuild"
        return "no fault"


@dataclass
class Action:
    session: int
    kind: str  # open | upload | search | refine | back
    start: float
    end: float
    outcome: str  # ok | error | reset | connection | timeout
    text: str = ""
    items: str | None = None
    chain_ok: bool = True
    app_starts: tuple[int, int] = (0, 0)  # app starts seen at the action's start and end


# ---- one shopper -------------------------------------------------------------------------

class Shopper:
    def __init__(self, n: int, context, app: App, timeline: Timeline, refs: list[Path],
                 cfg: LoadConfig, actions: list[Action]):
        self.n, self.context, self.app, self.tl, self.refs = n, context, app, timeline, refs
        self.cfg, self.actions = cfg, actions
        self.rng = random.Random(cfg.seed * 1000 + n)
        self.page = None
        self.turns = 0  # step cards the page should show
        self.open_turn = False  # results on display without a pick: a search replaces them
        self.first_feedback = ""
        self.counter = 0

    async def act(self, kind: str, do, success: str, need_steps: int | None,
                  fresh: bool = False, absent: str | None = None) -> Action:
        """Do one action and wait for its outcome: ``success`` shown with ``need_steps`` step
        cards (and ``absent`` gone), or whatever the page shows instead."""
        start, starts = self.tl.now(), self.app.starts
        outcome = {"kind": "timeout", "text": f"no outcome within {ACTION_TIMEOUT_S:.0f} s"}
        try:
            if not fresh:
                await self.page.evaluate(ARM)
            await do()
        except Exception as exc:  # noqa: BLE001 -- the page refused the input: recorded
            outcome["text"] = f"the action itself failed: {type(exc).__name__}: {exc}"[:300]
        else:
            try:
                handle = await self.page.wait_for_function(
                    OUTCOME, arg=[success, need_steps, fresh, absent], polling=100,
                    timeout=ACTION_TIMEOUT_S * 1000)
                outcome = await handle.json_value()
            except Exception as exc:  # noqa: BLE001 -- any failure is a recorded outcome
                if "Timeout" in type(exc).__name__:
                    outcome["text"] += f"; page: {await self.page_state(success)}"
                else:
                    outcome["text"] = f"{type(exc).__name__}: {exc}"[:300]
        action = Action(self.n, kind, start, self.tl.now(), outcome["kind"],
                        outcome.get("text", "") or "", outcome.get("items"),
                        app_starts=(starts, self.app.starts))
        if action.outcome == "ok":
            action.chain_ok = need_steps is None or outcome.get("steps") == need_steps
        self.actions.append(action)
        return action

    async def page_state(self, success: str) -> str:
        """What the page showed when an action found no outcome (for the report)."""
        try:
            return json.dumps(await self.page.evaluate(STATE, success))[:900]
        except Exception as exc:  # noqa: BLE001 -- a closed or navigating page
            return f"unreadable ({type(exc).__name__})"

    async def open(self) -> bool:
        if self.page is not None:
            await self.page.close()
        self.page = await self.context.new_page()
        self.turns, self.open_turn = 0, False

        async def go():
            await self.page.goto(self.app.url)
        a = await self.act("open", go, "Upload a photo, or pick a random catalog item", None,
                           fresh=True)  # a new document: nothing armed survives navigation
        return a.outcome in ("ok", "reset")

    async def upload(self) -> bool:
        ref = self.rng.choice(self.refs)

        async def do():
            await self.page.locator('input[type="file"]').set_input_files(str(ref))
        a = await self.act("upload", do, f"Reference: {ref.name}", 0)
        if a.outcome == "ok":
            self.turns, self.open_turn = 0, False
        return a.outcome == "ok"

    async def search(self) -> Action:
        self.counter += 1
        text = f"{self.rng.choice(PHRASES)} {self.n}-{self.counter}"
        box = self.page.get_by_label("Feedback", exact=True)
        need = self.turns + 1  # every search is a turn of the chain (issue 36), even from an
        # open turn whose results were not picked from

        async def do():
            await box.fill(text)
            await box.press("Enter")
        a = await self.act("search", do, f'results for "{text}" in ', need)
        if a.outcome == "ok":
            self.turns, self.open_turn = need, True
            if need == 1:
                self.first_feedback = text
        return a

    async def refine(self) -> Action:
        cards = self.page.locator('[class*="st-key-result_"]')
        card = cards.nth(self.rng.randrange(min(6, max(1, await cards.count()))))
        title = (await card.locator("strong").first.inner_text()).replace("\u200b", "")

        async def do():
            await card.get_by_role("button", name="Refine from this").click()
        # the open turn keeps its card (now with its pick): the chain length does not change;
        # its results go (the title may already be the reference's: refined from itself)
        a = await self.act("refine", do, f"Reference: {title}", self.turns,
                           absent=" results for ")
        if a.outcome == "ok":
            self.open_turn = False
        return a

    async def back(self) -> Action:
        async def do():
            await self.page.get_by_role("button", name="Back to step 1").click()
        a = await self.act("back", do, f'results for "{self.first_feedback}" in ', 1)
        if a.outcome == "ok":
            self.turns, self.open_turn = 1, True
        return a

    async def pause(self) -> None:
        await asyncio.sleep(self.rng.uniform(*self.cfg.think_s))

    def stop_at(self) -> float:
        """``--duration``, stretched until ``tail_s`` after the app restart (faults wait for
        each other on a loaded machine), but never beyond 1.5 x ``--duration``."""
        up = self.tl.events.get("app_up")
        longest = 1.5 * self.cfg.duration_s
        return longest if up is None else min(longest, max(self.cfg.duration_s,
                                                           up + self.cfg.tail_s))

    async def run(self) -> None:
        await asyncio.sleep(self.n * self.cfg.ramp_s / max(1, self.cfg.sessions))
        fresh = True
        while self.tl.now() < self.stop_at():
            if fresh:
                if not await self.open() or not await self.upload():
                    await asyncio.sleep(2)
                    continue
                fresh = False
            for step in (self.search, self.refine, self.search, self.back):
                if self.tl.now() >= self.stop_at():
                    break
                await self.pause()
                try:
                    a = await step()
                except Exception as exc:  # noqa: BLE001 -- e.g. no result card to refine
                    self.actions.append(Action(self.n, step.__name__, self.tl.now(),
                                               self.tl.now(), "timeout",
                                               f"{type(exc).__name__}: {exc}"[:300]))
                    fresh = True
                    break
                if a.outcome in ("reset", "connection", "timeout"):
                    fresh = True  # a new server session (app restart) or a stuck page
                    break
                if a.outcome == "error":
                    break  # e.g. database down: start the loop over from a search
        if self.page is not None:
            await self.page.close()


# ---- faults ------------------------------------------------------------------------------

async def faults(cfg: LoadConfig, tl: Timeline, app: App, server, catalog: FaultCatalog,
                 env: dict[str, str], logs: Path) -> dict:
    info: dict = {}
    await asyncio.sleep(max(0.0, cfg.rebuild_at_s - tl.now()))
    new_ids = catalog.add(cfg.rebuild_items)
    tl.mark("rebuild_started")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "indexer", "build", "--images", str(catalog.root),
        "--checkpoint", str(cfg.checkpoint), "--workers", "1", "--no-progress",
        cwd=REPO_ROOT, env=env, stdout=(logs / "rebuild.log").open("wb"),
        stderr=subprocess.STDOUT)
    info["rebuild_returncode"] = await proc.wait()
    tl.mark("rebuild_done")
    info["rebuild_added"] = len(new_ids)
    info["items_after_rebuild"] = len(catalog.ids)

    await asyncio.sleep(max(0.0, cfg.db_restart_at_s - tl.now(), cfg.gap_s))
    pid = server.status().pid
    os.kill(pid, signal.SIGKILL)
    while alive(pid):
        await asyncio.sleep(0.02)
    tl.mark("db_killed")
    await asyncio.sleep(cfg.db_down_s)
    await asyncio.to_thread(server.start)
    tl.mark("db_up")

    await asyncio.sleep(max(0.0, cfg.app_restart_at_s - tl.now(), cfg.gap_s))
    app.kill()
    tl.mark("app_killed")
    info["app_restart_seconds_to_serve"] = round(await asyncio.to_thread(app.start), 1)
    tl.mark("app_up")
    return info


# ---- report ------------------------------------------------------------------------------

def summarise(cfg: LoadConfig, actions: list[Action], tl: Timeline, info: dict) -> dict:
    """Latencies of answered actions, and everything else a shopper saw, by fault window.

    Shown errors: any error alert, a "Connection error" dialog or an action that never got an
    outcome, except the database's "reconnecting" message while the database is down (and for
    10 s after). A page reset (a new server session, the chain of turns gone) is expected only
    while the app restarts; anywhere else it counts as a chain lost with the server up, like a
    step strip that does not show the turns the session made. An action in flight when the
    app was killed that then got no outcome (its page kept showing the old, error-free
    content: the click died with the server) is counted apart, as lost with the restart."""
    ok = [a for a in actions if a.outcome == "ok"]
    latency = {kind: percentiles([a.end - a.start for a in ok if a.kind == kind])
               for kind in ("search", "refine", "back", "upload") if
               any(a.kind == kind for a in ok)}
    messages: dict[str, dict[str, int]] = {}
    shown_errors, reconnecting_in_outage, resets_by_restart, chains_lost = 0, 0, 0, 0
    lost_with_restart = 0
    for a in actions:
        if a.outcome == "ok":
            if not a.chain_ok and a.app_starts[0] == a.app_starts[1]:
                chains_lost += 1
            continue
        reconnecting = a.outcome == "error" and "reconnecting" in a.text
        lost = (a.outcome == "timeout" and "page:" in a.text
                and tl.overlaps_app_restart(a.start, a.end))
        # A click that died with the server belongs to the restart, however long after it the
        # action's own timeout ran out (on a busy machine, past the window's 30 s).
        window = "app restart" if lost else tl.window(a.end)
        label = ("database reconnecting message" if reconnecting else
                 "no outcome: in flight when the app was killed" if lost else
                 f"error: {a.text[:160]}" if a.outcome == "error" else a.outcome)
        messages.setdefault(window, {}).setdefault(label, 0)
        messages[window][label] += 1
        if a.outcome == "reset":
            if window == "app restart" or tl.overlaps_app_restart(a.start, a.end):
                resets_by_restart += 1
            else:
                chains_lost += 1
        elif reconnecting and window == "database down":
            reconnecting_in_outage += 1
        elif lost:
            lost_with_restart += 1
        else:
            shown_errors += 1
    db_up = tl.events.get("db_up")
    recovery = {}
    if db_up is not None:
        for s in range(cfg.sessions):
            after = [a.end for a in ok if a.session == s and a.end >= db_up
                     and a.kind in ("search", "refine", "back")]
            recovery[s] = round(min(after) - db_up, 2) if after else None
    rebuilt = str(info.get("items_after_rebuild"))
    reload_seen = [a.end for a in ok if a.items and a.items.replace(",", "") == rebuilt]
    answered = [v for v in recovery.values() if v is not None]
    return {
        "actions": len(actions), "answered": len(ok), "latency_ms": latency,
        "messages_by_window": messages,
        "errors_shown": shown_errors,
        "reconnecting_messages_during_outage": reconnecting_in_outage,
        "recovery_after_database_s": recovery,
        "max_recovery_after_database_s": max(answered) if answered else None,
        "sessions_not_answering_after_database": sum(v is None for v in recovery.values()),
        "index_reload_seen_after_rebuild_s": (round(min(reload_seen) - tl.events[
            "rebuild_done"], 2) if reload_seen and "rebuild_done" in tl.events else None),
        "chains_lost_while_server_up": chains_lost,
        "chains_reset_by_app_restart": resets_by_restart,
        "actions_lost_with_app_restart": lost_with_restart,
        "timeline_s": tl.events, **info,
    }


def browser_command(nice: int, folder: Path) -> str:
    """Chromium, or a wrapper that starts it and its renderers at ``nice``.

    Chromium sets its own processes' priorities (as root: -8 for the browser, 0 for renderers),
    so under root the wrapper also drops CAP_SYS_NICE: nothing it starts can rise again."""
    if nice <= 0:
        return CHROMIUM
    keep_down = "setpriv --bounding-set -sys_nice " if os.geteuid() == 0 else ""
    wrapper = folder / "chromium-nice"
    wrapper.write_text(f'#!/bin/sh\nexec {keep_down}nice -n {int(nice)} {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


async def drive(cfg: LoadConfig, app: App, server, catalog: FaultCatalog, env, logs: Path,
                refs: list[Path]) -> tuple[list[Action], Timeline, dict]:
    from playwright.async_api import async_playwright

    actions: list[Action] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=browser_command(cfg.browser_nice,
                                                                           logs.parent),
                                          args=CHROMIUM_ARGS,
                                          headless=True)
        contexts = [await browser.new_context(viewport={"width": 1280, "height": 1400})
                    for _ in range(cfg.sessions)]
        for ctx in contexts:  # every input and page read gets the action's limit, not 30 s
            ctx.set_default_timeout(ACTION_TIMEOUT_S * 1000)
        tl = Timeline()
        shoppers = [Shopper(i, ctx, app, tl, refs, cfg, actions)
                    for i, ctx in enumerate(contexts)]
        fault_task = asyncio.create_task(faults(cfg, tl, app, server, catalog, env, logs))
        await asyncio.gather(*(s.run() for s in shoppers))
        info = await fault_task if fault_task.done() else {"faults": "not all ran: "
                                                           "--duration too short"}
        if not fault_task.done():
            fault_task.cancel()
        await browser.close()
    return actions, tl, info


def run(cfg: LoadConfig) -> dict:
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} not found (apt-get install chromium)")
    with temporary_server(cache_size="256M") as server, \
            tempfile.TemporaryDirectory(prefix="load-") as tmp:
        root = Path(tmp)
        catalog = FaultCatalog(root / "shop", source=cfg.source, seed=cfg.seed)
        catalog.add(cfg.catalog_items)
        refs = catalog.photos_outside(5, root)  # shoppers' own photos
        (root / "logs").mkdir()
        env = {**os.environ, "MONGO_URI": server.uri + "/?directConnection=true",
               "DB_NAME": "bench_load", "COLLECTION_NAME": "catalog",
               "DATA_DIR": str(root / "data"), "CATALOG_DIR": str(catalog.root),
               "APP_TOP_K": "8"}
        env.pop("APP_PORT", None)
        app = App(env, free_port(), root / "logs", cfg.checkpoint)
        first_start = app.start()  # bootstrap indexes the catalog with the real CLI
        log.info("app serving after %.1f s (catalog indexed by run_app.sh)", first_start)
        try:
            actions, tl, info = asyncio.run(drive(cfg, app, server, catalog, env,
                                                  root / "logs", refs))
        finally:
            app.kill()
        client = pymongo.MongoClient(server.uri, directConnection=True)
        stored = client["bench_load"]["catalog"].count_documents({})
        client.close()
        app_logs = {p.name: p.read_text(errors="replace")[-2000:]
                    for p in sorted((root / "logs").glob("*.log"))}
    summary = summarise(cfg, actions, tl, info)
    summary["stored_after"] = stored
    summary["first_start_seconds_to_serve"] = round(first_start, 1)
    return {"config": {**cfg.__dict__, "checkpoint": str(cfg.checkpoint),
                       "source": str(cfg.source), "out_dir": str(cfg.out_dir)},
            "summary": summary,
            "actions": [a.__dict__ for a in actions],
            "log_tails": app_logs}


def main(argv: list[str] | None = None) -> int:
    cfg, report, path = run_benchmark("load", argv, parse_args, run, module="tests.system.load")
    s = report["summary"]
    print(machine_line())
    rows = [(kind, v["n"], f"{v['p50_ms']:.0f}", f"{v['p95_ms']:.0f}")
            for kind, v in s["latency_ms"].items()]
    print(table(rows, ("action", "answered", "p50 ms", "p95 ms")))
    print(json.dumps({k: s[k] for k in (
        "actions", "answered", "errors_shown", "reconnecting_messages_during_outage",
        "max_recovery_after_database_s", "sessions_not_answering_after_database",
        "index_reload_seen_after_rebuild_s", "chains_lost_while_server_up",
        "chains_reset_by_app_restart", "actions_lost_with_app_restart", "timeline_s")},
                     indent=1))
    print("messages seen, by fault window:", json.dumps(s["messages_by_window"], indent=1))
    ok = (s["errors_shown"] == 0
          and s["sessions_not_answering_after_database"] == 0
          and (s["max_recovery_after_database_s"] or 99) <= 10
          and s["chains_lost_while_server_up"] == 0)
    print(f"floors: {'MET' if ok else 'NOT MET'}; written {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
