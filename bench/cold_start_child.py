"""One app cold start, run as a fresh process by bench.throughput: the app's own code path.

    python -m bench.cold_start_child --image PATH --feedback TEXT   (settings from the env)

Exactly what the Streamlit page does before its first answer (app/streamlit_app.py:
get_retriever -> resources.load_model, get_index -> resources.open_index, then
pipeline.run_query on an uploaded reference), minus the browser. Prints one JSON line of
wall-clock timestamps (time.time(), comparable with the parent's spawn time).
"""

from __future__ import annotations

import time

PROCESS_MAIN = time.time()  # interpreter up, before any heavy import

import argparse  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.cold_start_child")
    p.add_argument("--image", required=True, help="the shopper's upload")
    p.add_argument("--feedback", default="is darker and has long sleeves")
    p.add_argument("--no-streamlit", action="store_true",
                   help="do not count `import streamlit` (the server process pays it)")
    a = p.parse_args(argv)
    marks = {"process_main": PROCESS_MAIN}
    if not a.no_streamlit:
        import streamlit  # noqa: F401

        marks["streamlit_imported"] = time.time()
    from app import resources
    from app.pipeline import reference_from_upload, run_query
    from app.settings import load_app_config

    config = load_app_config()
    marks["app_imported"] = time.time()
    retriever = resources.load_model(config.checkpoint)  # includes the app's warm-up query
    marks["model_loaded"] = time.time()
    index = resources.open_index(config.settings, retriever.fingerprint)
    marks["index_loaded"] = time.time()
    reference = reference_from_upload(Path(a.image).read_bytes(), Path(a.image).name,
                                      max_bytes=config.max_upload_bytes)
    turn = run_query(retriever, index, reference, a.feedback, k=config.default_k)
    marks["answered"] = time.time()
    out = {"marks": marks, "results": len(turn.results), "index_size": index.size,
           "index_kind": index.index_kind, "index_load_s": index.load_seconds,
           "index_source": index.load_source, "engine": retriever.engine.name,
           "query_ms": turn.latency_ms, "fingerprint": retriever.fingerprint}
    print(json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    main()
