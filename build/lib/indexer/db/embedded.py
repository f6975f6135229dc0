"""Lifecycle of the embedded SecantusDB server (the default when no MongoDB is configured).

Why a separate process with a PID file: the indexer, the app and several shard workers all
share one server, and it must outlive any one of them. ``start`` is idempotent (a running
server we started is reused), serialised by a file lock so concurrent shard workers cannot
start two servers on one storage folder, and refuses clearly when the port belongs to
someone else. ``stop`` sends SIGTERM so WiredTiger closes cleanly, SIGKILL only as a last resort.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import pymongo
import pymongo.errors

from indexer.errors import EmbeddedDBError, PortInUseError
from project_settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddedConfig:
    """Where and how the embedded server runs."""

    home: Path  # holds db/ (WiredTiger files), secantus.pid, secantus.log, start.lock
    host: str = "127.0.0.1"
    port: int = 27017
    cache_size: str = "512M"  # WiredTiger cache; the default 1G is a lot on a shared laptop
    start_timeout_s: float = 60.0  # cold start is ~1 s; generous for a loaded machine
    stop_timeout_s: float = 20.0  # SIGTERM grace before SIGKILL

    @classmethod
    def from_settings(cls, settings: Settings) -> EmbeddedConfig:
        return cls(home=settings.embedded_dir, host=settings.embedded_host,
                   port=settings.embedded_port)

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}"


@dataclass(frozen=True)
class ServerStatus:
    """What ``status`` found. state: running | stopped | stale | starting."""

    state: str
    uri: str
    pid: int | None = None
    message: str = ""
    reused: bool = False  # start() found it already running


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port (cheaper than a ping)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def ping(uri: str, timeout_ms: int = 1000, **client_kwargs) -> bool:
    """True when a MongoDB-protocol server at ``uri`` answers ``ping`` within the timeout."""
    client = pymongo.MongoClient(
        uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms, **client_kwargs
    )
    try:
        client.admin.command("ping")
        return True
    except pymongo.errors.PyMongoError:
        return False
    finally:
        client.close()


def pid_alive(pid: int | None) -> bool:
    """True when ``pid`` is a live (non-zombie) process; reaps it if it is our dead child."""
    if not pid or pid <= 0:
        return False
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass  # not our child: fine
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _is_our_server(pid: int, port: int) -> bool:
    """Guard against PID reuse: the process must be secantus listening on our port."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\x00")
    except OSError:
        return True  # no /proc (macOS): trust the PID, the ping decides
    args = [a.decode(errors="replace") for a in cmdline]
    return any("secantus" in a for a in args) and str(port) in args


class EmbeddedServer:
    """Start, reuse, inspect and stop one SecantusDB process described by EmbeddedConfig."""

    def __init__(self, config: EmbeddedConfig):
        self.config = config
        self.pid_file = config.home / "secantus.pid"
        self.log_file = config.home / "secantus.log"
        self.storage = config.home / "db"

    @classmethod
    def from_settings(cls, settings: Settings) -> EmbeddedServer:
        return cls(EmbeddedConfig.from_settings(settings))

    @property
    def uri(self) -> str:
        return self.config.uri

    # ---- status -------------------------------------------------------------------------
    def _read_pid(self) -> int | None:
        try:
            return int(json.loads(self.pid_file.read_text())["pid"])
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, json.JSONDecodeError):
            log.warning("PID file %s is unreadable; treating it as stale", self.pid_file)
            return -1

    def status(self) -> ServerStatus:
        """Inspect the PID file, the process and the port; never changes anything."""
        pid = self._read_pid()
        uri = self.uri
        if pid is None:
            if port_open(self.config.host, self.config.port):
                return ServerStatus("stopped", uri, None,
                                    f"no PID file in {self.config.home}, but something listens "
                                    f"on {self.config.host}:{self.config.port} (not started "
                                    "by this project)")
            return ServerStatus("stopped", uri, None, "not running")
        if pid <= 0 or not pid_alive(pid) or not _is_our_server(pid, self.config.port):
            return ServerStatus("stale", uri, pid,
                                f"stale PID file {self.pid_file}: process {pid} is not a running "
                                "SecantusDB server (it was killed or the machine restarted)")
        if ping(uri, timeout_ms=1000, directConnection=True):
            return ServerStatus("running", uri, pid, f"running (pid {pid}) at {uri}")
        return ServerStatus("starting", uri, pid, f"process {pid} is up but does not answer yet")

    # ---- start --------------------------------------------------------------------------
    @contextmanager
    def _lock(self):
        self.config.home.mkdir(parents=True, exist_ok=True)
        with open(self.config.home / "start.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def start(self) -> ServerStatus:
        """Start the server, or reuse it when it already runs; returns once it answers a ping.

        Raises PortInUseError when another program holds the port (``answers_mongo`` tells
        whether that program speaks MongoDB) and EmbeddedDBError when the server fails to come
        up (the message includes the tail of its log).
        """
        with self._lock():
            st = self.status()
            if st.state == "running":
                log.info("embedded database already running (pid %s) at %s", st.pid, st.uri)
                return ServerStatus("running", st.uri, st.pid, st.message, reused=True)
            if st.state == "starting":
                self._wait_until_ready(st.pid, proc=None)
                return ServerStatus("running", self.uri, st.pid, "running", reused=True)
            if st.state == "stale":
                log.warning("%s; removing it and starting a fresh server", st.message)
                self.pid_file.unlink(missing_ok=True)
            self._check_port_free()
            return self._spawn()

    def _check_port_free(self) -> None:
        host, port = self.config.host, self.config.port
        if not port_open(host, port):
            return
        speaks_mongo = ping(self.uri, timeout_ms=1500, directConnection=True)
        what = "a MongoDB server that this project did not start" if speaks_mongo else \
            "another program"
        err = PortInUseError(
            f"port {port} on {host} is already in use by {what}. Set EMBEDDED_DB_PORT to a "
            f"free port, stop that program, or point MONGO_URI at it explicitly."
        )
        err.answers_mongo = speaks_mongo  # type: ignore[attr-defined]
        raise err

    def _spawn(self) -> ServerStatus:
        self.storage.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "secantus", "--host", self.config.host,
               "--port", str(self.config.port), "--storage-path", str(self.storage),
               "--cache-size", self.config.cache_size, "--log-level", "WARNING"]
        t0 = time.monotonic()
        with open(self.log_file, "ab") as logf:
            proc = subprocess.Popen(
                cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.config.home,  # no stray ./secantusd.toml is auto-discovered
                start_new_session=True,  # survives Ctrl-C of the process that started it
            )
        self.pid_file.write_text(json.dumps({
            "pid": proc.pid, "host": self.config.host, "port": self.config.port,
            "storage": str(self.storage), "started_at": time.time(),
        }))
        self._wait_until_ready(proc.pid, proc)
        log.info("embedded database started (pid %d) at %s in %.1f s", proc.pid, self.uri,
                 time.monotonic() - t0)
        return ServerStatus("running", self.uri, proc.pid, f"started (pid {proc.pid})")

    def _wait_until_ready(self, pid: int | None, proc: subprocess.Popen | None) -> None:
        deadline = time.monotonic() + self.config.start_timeout_s
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise EmbeddedDBError(
                    f"SecantusDB exited with code {proc.returncode} while starting on "
                    f"{self.uri}. Last log lines ({self.log_file}):\n{self._log_tail()}"
                )
            if port_open(self.config.host, self.config.port, timeout=0.2) and ping(
                self.uri, timeout_ms=500, directConnection=True
            ):
                return
            time.sleep(0.1)
        if pid is not None:
            self._terminate(pid)
        self.pid_file.unlink(missing_ok=True)
        raise EmbeddedDBError(
            f"SecantusDB did not answer at {self.uri} within {self.config.start_timeout_s:.0f} s. "
            f"Log: {self.log_file}\n{self._log_tail()}"
        )

    def _log_tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    # ---- stop ---------------------------------------------------------------------------
    def stop(self) -> ServerStatus:
        """Stop the server this project started (SIGTERM, then SIGKILL after the grace time)."""
        with self._lock():
            st = self.status()
            if st.state == "stopped":
                return st
            if st.state == "stale":
                self.pid_file.unlink(missing_ok=True)
                return ServerStatus("stopped", st.uri, st.pid, f"{st.message}; removed it")
            assert st.pid is not None
            how = self._terminate(st.pid)
            self._wait_port_closed()
            self.pid_file.unlink(missing_ok=True)
            return ServerStatus("stopped", st.uri, st.pid, f"stopped pid {st.pid} ({how})")

    def _wait_port_closed(self) -> None:
        """The process can be gone a moment before the kernel stops accepting on its port (seen
        under load): a restart right after stop() must not find the port still answering."""
        deadline = time.monotonic() + self.config.stop_timeout_s
        while port_open(self.config.host, self.config.port, timeout=0.2):
            if time.monotonic() > deadline:
                log.warning("port %d still accepts connections %.0f s after SecantusDB stopped",
                            self.config.port, self.config.stop_timeout_s)
                return
            time.sleep(0.05)

    def _terminate(self, pid: int) -> str:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return "already gone"
        deadline = time.monotonic() + self.config.stop_timeout_s
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return "SIGTERM"
            time.sleep(0.05)
        log.warning("SecantusDB pid %d ignored SIGTERM for %.0f s; sending SIGKILL", pid,
                    self.config.stop_timeout_s)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        while pid_alive(pid):
            time.sleep(0.05)
        return "SIGKILL"

    def describe(self) -> dict:
        """Plain dict for CLIs and logs."""
        return {**asdict(self.config), "home": str(self.config.home),
                "pid_file": str(self.pid_file), "log_file": str(self.log_file)}
