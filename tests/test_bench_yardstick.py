"""Yardsticks run as the project runs: a benchmark started without the allocator that
scripts/env.sh preloads for every PyTorch entry point re-runs itself with it."""

from __future__ import annotations

import os

import pytest

from bench import _common


@pytest.fixture
def execs(monkeypatch):
    calls = []
    monkeypatch.setattr(_common, "tcmalloc_library", lambda: "/lib/libtcmalloc_minimal.so.4")
    monkeypatch.setattr(os, "execve", lambda *args: calls.append(args))
    return calls


def test_a_bench_without_tcmalloc_reruns_itself_with_it(execs, monkeypatch):
    monkeypatch.setenv("LD_PRELOAD", "/lib/other.so")
    _common.under_project_allocator("bench.index_throughput", ["--n", "64"])
    [(exe, argv, env)] = execs
    assert argv[1:] == ["-m", "bench.index_throughput", "--n", "64"]
    assert env["LD_PRELOAD"] == "/lib/libtcmalloc_minimal.so.4:/lib/other.so"


def test_a_bench_already_under_tcmalloc_runs_on(execs, monkeypatch):
    monkeypatch.setenv("LD_PRELOAD", "/lib/libtcmalloc_minimal.so.4")
    _common.under_project_allocator("bench.index_throughput", [])
    assert execs == []


def test_no_tcmalloc_on_the_system_means_no_rerun(execs, monkeypatch):
    monkeypatch.setattr(_common, "tcmalloc_library", lambda: None)
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    _common.under_project_allocator("bench.latency", [])
    assert execs == []


def test_the_library_is_the_one_scripts_env_sh_preloads():
    found = _common.tcmalloc_library()
    if found is None:
        pytest.skip("libtcmalloc_minimal.so.4 is not installed here")
    assert found.endswith("/libtcmalloc_minimal.so.4") and os.path.isfile(found)
