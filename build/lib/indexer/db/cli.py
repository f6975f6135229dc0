"""The embedded database's command line: ``python -m indexer.db start|stop|status``.

Why a CLI: the app and the indexer start the server on demand, but a developer wants to see
whether it runs, where its files are, and to stop it before deleting ``data/``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from indexer.db.embedded import EmbeddedServer, ping
from indexer.db.store import mask_uri
from indexer.errors import IndexerError
from project_settings import SettingsError, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m indexer.db", description=__doc__)
    parser.add_argument("action", choices=["start", "stop", "status"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
        if not settings.uses_default_local_address:
            uri = mask_uri(settings.effective_uri)
            up = ping(settings.effective_uri, timeout_ms=3000)
            print(f"MONGO_URI points at an external MongoDB ({uri}): nothing to {args.action}. "
                  f"It {'answers' if up else 'does NOT answer'}.")
            return 0 if up or args.action == "stop" else 1
        server = EmbeddedServer.from_settings(settings)
        if args.action == "start":
            st = server.start()
            verb = "already running" if st.reused else "started"
            print(f"embedded database {verb}: {st.uri} (pid {st.pid}); data in {server.storage}")
            return 0
        if args.action == "stop":
            st = server.stop()
            print(st.message)
            return 0
        st = server.status()
        print(f"{st.state}: {st.message}\n  uri: {st.uri}\n  data: {server.storage}\n"
              f"  log: {server.log_file}")
        return 0 if st.state == "running" else 3
    except (IndexerError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

