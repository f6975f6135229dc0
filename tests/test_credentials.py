"""Credentials are never printed: every line a failing run writes (stdout, stderr, log records
at DEBUG) and every message the page shows is searched for the password of MONGO_URI.

Two failures: nothing listens at the URI's address, and a server that answers but refuses the
credentials. Each entry point a user runs is tried: the indexer (build with -v, stats, drop),
the database CLI, the app's bootstrap and the page itself.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, free_port
from streamlit.testing.v1 import AppTest

PASSWORD = "Sup3r-S3cret-42"
SCRIPT = str(REPO_ROOT / "app" / "streamlit_app.py")


# "nothing listens" waits out a 5 s server selection per command: slow
@pytest.fixture(params=[pytest.param("nothing listens", marks=pytest.mark.slow),
                        "credentials refused"])
def secret_uri(request, mongo_server) -> str:
    port = free_port() if request.param == "nothing listens" else mongo_server.config.port
    return f"mongodb://shopadmin:{PASSWORD}@127.0.0.1:{port}/?directConnection=true"


COMMANDS = [
    ["-m", "indexer", "-v", "build", "--images", "{images}"],
    ["-m", "indexer", "stats"],
    ["-m", "indexer", "drop", "--yes"],
    ["-m", "indexer.db", "status"],
    ["-m", "indexer.db", "start"],
    ["-m", "app.bootstrap"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(c[1:3]) for c in COMMANDS])
def test_no_command_prints_the_password(secret_uri, args, tmp_path, tiny_checkpoint):
    (tmp_path / "images").mkdir()
    env = {**os.environ, "MONGO_URI": secret_uri, "CHECKPOINT": str(tiny_checkpoint),
           "DATA_DIR": str(tmp_path / "data"), "CATALOG_DIR": str(tmp_path / "images")}
    argv = [a.format(images=tmp_path / "images") for a in args]
    r = subprocess.run([sys.executable, *argv], cwd=REPO_ROOT, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode != 0, "the run should fail"
    output = r.stdout + r.stderr
    assert output.strip(), "a failing run says something"
    assert PASSWORD not in output
    assert "shopadmin:***@" in output or "does NOT answer" in output or "127.0.0.1" in output


def test_the_page_and_its_logs_never_show_the_password(secret_uri, monkeypatch, caplog,
                                                       tiny_checkpoint, tmp_path):
    monkeypatch.setenv("MONGO_URI", secret_uri)
    monkeypatch.setenv("CHECKPOINT", str(tiny_checkpoint))
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    with caplog.at_level(logging.DEBUG):
        at = AppTest.from_file(SCRIPT, default_timeout=60).run()
    assert not at.exception
    shown = [e.value for e in (*at.error, *at.markdown, *at.caption, *at.info, *at.warning)]
    assert at.error and "shopadmin:***@" in at.error[0].value
    assert not [s for s in shown if PASSWORD in str(s)]
    logged = [caplog.text, *(str(r.args) for r in caplog.records)]
    assert not [line for line in logged if PASSWORD in line]
