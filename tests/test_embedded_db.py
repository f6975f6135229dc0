"""Embedded SecantusDB lifecycle against the real server: start, reuse, stop, stale PID file,
taken port, ensure_database, the CLI, and failing fast on an unreachable MONGO_URI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pymongo
import pytest
from conftest import REPO_ROOT, free_port

from indexer import (
    DatabaseUnavailableError,
    EmbeddedConfig,
    EmbeddedServer,
    PortInUseError,
    ensure_database,
    mask_uri,
    port_open,
)
from project_settings import load_settings


@pytest.fixture
def server(tmp_path):
    srv = EmbeddedServer(EmbeddedConfig(home=tmp_path / "secantus", port=free_port(),
                                        cache_size="64M"))
    yield srv
    srv.stop()


def _client(uri: str) -> pymongo.MongoClient:
    return pymongo.MongoClient(uri, directConnection=True, serverSelectionTimeoutMS=3000)


@pytest.mark.slow
def test_start_reuse_stop_and_data_survives_restart(server):
    first = server.start()
    assert first.state == "running" and not first.reused
    assert json.loads(server.pid_file.read_text())["pid"] == first.pid
    with _client(server.uri) as c:
        c.t.items.insert_one({"_id": "kept"})

    second = server.start()
    assert second.reused and second.pid == first.pid

    stopped = server.stop()
    assert stopped.state == "stopped" and "SIGTERM" in stopped.message
    assert not server.pid_file.exists()
    assert not port_open(server.config.host, server.config.port)
    assert server.status().state == "stopped"

    again = server.start()
    assert again.pid != first.pid
    with _client(server.uri) as c:
        assert c.t.items.find_one({"_id": "kept"}) == {"_id": "kept"}


@pytest.mark.slow
def test_stale_pid_file_is_reported_and_replaced(server, caplog):
    server.config.home.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    server.pid_file.write_text(json.dumps({"pid": dead.pid}))

    st = server.status()
    assert st.state == "stale" and str(dead.pid) in st.message

    started = server.start()
    assert started.state == "running" and started.pid != dead.pid
    assert "stale PID file" in caplog.text


def test_stop_with_stale_pid_file_only_removes_it(server):
    server.config.home.mkdir(parents=True)
    server.pid_file.write_text("not json")
    st = server.stop()
    assert st.state == "stopped" and "stale" in st.message
    assert not server.pid_file.exists()


@pytest.mark.slow
def test_port_taken_by_another_program_is_refused_clearly(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        srv = EmbeddedServer(EmbeddedConfig(home=tmp_path / "s", port=port))
        with pytest.raises(PortInUseError, match=f"port {port}.*EMBEDDED_DB_PORT") as info:
            srv.start()
        assert info.value.answers_mongo is False
        assert not srv.pid_file.exists()


def test_port_taken_by_a_foreign_mongodb_is_reported_but_usable(mongo_server, tmp_path):
    port = mongo_server.config.port
    foreign = EmbeddedServer(EmbeddedConfig(home=tmp_path / "other", port=port))
    with pytest.raises(PortInUseError, match="did not start") as info:
        foreign.start()
    assert info.value.answers_mongo is True
    # ensure_database with the default local address simply uses what answers there
    settings = load_settings(env={"EMBEDDED_DB_PORT": str(port), "DATA_DIR": str(tmp_path)},
                             env_file=tmp_path / "none.env")
    client = ensure_database(settings)
    assert client.admin.command("ping")["ok"] == 1
    assert not (tmp_path / "secantus" / "secantus.pid").exists()


@pytest.mark.slow
def test_ensure_database_starts_the_embedded_server_when_nothing_runs(tmp_path):
    port = free_port()
    settings = load_settings(env={"EMBEDDED_DB_PORT": str(port), "DATA_DIR": str(tmp_path)},
                             env_file=tmp_path / "none.env")
    client = ensure_database(settings)
    try:
        client.t.c.insert_one({"x": 1})
        assert (tmp_path / "secantus" / "secantus.pid").exists()
        assert ensure_database(settings).t.c.count_documents({}) == 1  # reuses it
    finally:
        client.close()
        EmbeddedServer.from_settings(settings).stop()


def test_unreachable_mongo_uri_fails_fast_with_masked_uri(tmp_path):
    uri = f"mongodb://shop:hunter2@127.0.0.1:{free_port()}/?authSource=admin"
    settings = load_settings(env={"MONGO_URI": uri}, env_file=tmp_path / "none.env")
    with pytest.raises(DatabaseUnavailableError) as info:
        ensure_database(settings, timeout_ms=1500)
    assert "Timeout: 1.5s" in str(info.value.__cause__)  # gave up after its own 1.5 s
    msg = str(info.value)
    assert "hunter2" not in msg and "shop:***@127.0.0.1" in msg and "MONGO_URI" in msg


def test_mask_uri_hides_passwords_only():
    assert mask_uri("mongodb://u:p%40ss@h:1/db") == "mongodb://u:***@h:1/db"
    assert mask_uri("mongodb+srv://u:pw@c.example.net/?password=x&w=1") == (
        "mongodb+srv://u:***@c.example.net/?password=***&w=1")
    assert mask_uri("mongodb://h:27017") == "mongodb://h:27017"


@pytest.mark.slow
def test_cli_start_status_stop(tmp_path):
    env = {**os.environ, "DATA_DIR": str(tmp_path), "EMBEDDED_DB_PORT": str(free_port()),
           "MONGO_URI": ""}

    def cli(action: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "indexer.db", action], cwd=REPO_ROOT,
                              env=env, capture_output=True, text=True, timeout=90)

    try:
        r = cli("start")
        assert r.returncode == 0 and "started" in r.stdout, r.stderr
        r = cli("start")
        assert r.returncode == 0 and "already running" in r.stdout
        r = cli("status")
        assert r.returncode == 0 and r.stdout.startswith("running")
    finally:
        r = cli("stop")
    assert r.returncode == 0 and "stopped pid" in r.stdout
    r = cli("status")
    assert r.returncode == 3 and r.stdout.startswith("stopped")
