"""The query pipeline the page calls: reference image + feedback -> ranked catalog items.

In a chain, a search also carries the conversation so far (the model encodes every turn's
reference and sentence), the shopper's "More like this" / "Less like this" clicks (Rocchio over
the items' vectors, app.reranking) and the items already shown and passed over (ranked lower).

Plain Python with the encoder and the search passed in (the CLIP4Cir lesson: the UI, the tests
and any benchmark share one path), so tests hand it a tiny real model and a real database.
Nothing here touches Streamlit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import pymongo.errors
from PIL import Image

from app.feedback import MAX_FEEDBACK_CHARS, drop_clauses, normalize_feedback
from app.history import Reference, ResultItem, Steer, Turn
from app.memory import ConversationTurn, clicks, conversation, moved_on_from, shown
from app.reranking import demote, rocchio, search_depth
from imaging import ImageLoadError, load_image, make_thumbnail
from indexer import DatabaseOutage, DatabaseUnavailableError, RetryPolicy, call_with_retry

log = logging.getLogger(__name__)
T = TypeVar("T")

THUMBNAIL_PX = 256  # side of the JPEG kept for uploads in the history strip


class QueryEncoder(Protocol):
    """What the pipeline needs from ``model.Retriever``: one query vector for a conversation
    ((reference image, sentence) pairs, oldest first; one pair is ``encode_query``), moved away
    from the earlier references unless ``avoid_earlier`` is off; and the words as it reads
    them (typos mended, greetings and thanks left out)."""

    def encode_conversation(self, turns: Sequence[ConversationTurn], *,
                            avoid_earlier: bool = True) -> np.ndarray: ...

    def mend(self, texts: Sequence[str]) -> list[str]: ...


class CatalogIndex(Protocol):
    """What the pipeline needs from the indexer's search class."""

    def search(
        self, query_vec: np.ndarray, k: int, category: str | None = None
    ) -> list[tuple[str, float]]: ...

    def fetch(self, ids: Sequence[str]) -> list[dict[str, Any]]: ...

    def vectors_of(self, ids: Sequence[str]) -> np.ndarray: ...


def reference_from_upload(data: bytes, name: str, *, max_bytes: int | None = None) -> Reference:
    """Validate and decode an uploaded file; raises ImageLoadError with a message for the page."""
    kwargs = {} if max_bytes is None else {"max_bytes": max_bytes}
    image = load_image(data, **kwargs)
    return Reference(
        kind="upload",
        key=Reference.upload_key(data),
        label=name or "uploaded image",
        image=image,
        thumbnail=make_thumbnail(image, THUMBNAIL_PX),
        data=bytes(data),
    )


def resolve_image_path(raw: str | None, search_dirs: Sequence[Path] = ()) -> Path | None:
    """Find a document's image file: as stored, else relative to each of ``search_dirs``."""
    if not raw:
        return None
    path = Path(raw)
    if path.is_file():
        return path
    if not path.is_absolute():
        for base in search_dirs:
            if (base / path).is_file():
                return base / path
    return None


def reference_from_document(
    doc: Mapping[str, Any], search_dirs: Sequence[Path] = ()
) -> Reference:
    """Turn a catalog document into a reference: the full image, else its thumbnail.

    Why the fallback: the catalog folder may have moved or been deleted since indexing; the
    stored thumbnail still gives the model a (smaller) picture of the garment.
    """
    item_id = str(doc["_id"])
    thumbnail = bytes(doc["thumbnail"]) if doc.get("thumbnail") else None
    image: Image.Image | None = None
    path = resolve_image_path(doc.get("image_path"), search_dirs)
    if path is not None:
        try:
            image = load_image(path)
        except ImageLoadError as err:
            log.warning("catalog image of %s unreadable (%s); using its thumbnail", item_id, err)
    elif doc.get("image_path"):
        log.warning("catalog image %s of %s is missing; using its thumbnail",
                    doc.get("image_path"), item_id)
    if image is None and thumbnail is not None:
        image = load_image(thumbnail)
    if image is None:
        raise ImageLoadError(
            f"catalog item {item_id} has neither a readable image file nor a thumbnail; "
            "re-index the catalog with `python -m indexer build`"
        )
    return Reference(
        kind="catalog",
        key=item_id,
        label=str(doc.get("title") or item_id),
        image=image,
        thumbnail=thumbnail or make_thumbnail(image, THUMBNAIL_PX),
    )


def result_from_document(doc: Mapping[str, Any], score: float, seen: bool = False
                         ) -> ResultItem:
    return ResultItem(
        item_id=str(doc["_id"]),
        score=float(score),
        title=str(doc.get("title") or doc["_id"]),
        category=str(doc.get("category") or ""),
        attributes=dict(doc.get("attributes") or {}),
        thumbnail=bytes(doc["thumbnail"]) if doc.get("thumbnail") else None,
        image_path=doc.get("image_path"),
        seen=seen,
    )


def run_query(
    encoder: QueryEncoder,
    index: CatalogIndex,
    reference: Reference,
    raw_feedback: str | None,
    *,
    k: int,
    category: str | None = None,
    max_chars: int = MAX_FEEDBACK_CHARS,
    steer: Steer | None = None,
) -> Turn:
    """Encode the conversation ending in (reference, feedback), move the query by the clicks,
    search the in-memory index, rank items already seen lower, fetch the top-k documents.

    The chain's catalog references, this one and earlier ones, are left out of the results
    (``app.memory.moved_on_from``): the shopper asked for something *different* from each. Without
    a ``steer`` (no earlier turns, no clicks) this is the single query (reference, feedback).
    """
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    steer = steer or Steer()
    feedback = normalize_feedback(raw_feedback, max_chars)
    sentence = drop_clauses(feedback.text, steer.removed) if steer.removed else feedback.text
    t0 = time.perf_counter()
    own = Turn(reference, feedback.text, [], likes=steer.likes, dislikes=steer.dislikes)
    liked, disliked = clicks([*steer.earlier, own])
    # Earlier references are an implicit "Less like this" (model.conversation.away_from); once
    # the shopper clicks, the clicks say it instead (both together lost: docs/conversation.md).
    query = encoder.encode_conversation(conversation(steer.earlier, reference, sentence),
                                        avoid_earlier=not (liked or disliked))
    if liked or disliked:
        query = rocchio(query, index.vectors_of(liked), index.vectors_of(disliked))
    t1 = time.perf_counter()
    seen_before = shown(steer.earlier) - set(liked)
    demoted = set() if steer.show_seen else seen_before | set(disliked)
    exclude = moved_on_from([*steer.earlier, own])
    hits = index.search(query, search_depth(k, len(demoted), len(exclude)), category)
    hits = demote([(i, s) for i, s in hits if i not in exclude], demoted)[:k]
    t2 = time.perf_counter()
    docs = {str(d["_id"]): d for d in index.fetch([i for i, _ in hits])}
    t3 = time.perf_counter()
    results = [result_from_document(docs[i], s, seen=i in seen_before)
               for i, s in hits if i in docs]
    notes = list(feedback.notes)
    read = encoder.mend([sentence])[0] if sentence else sentence
    if read != sentence:  # as a search engine says "showing results for"
        notes.append(f'Read as "{read}" (typos mended, greetings and thanks left out).')
    if feedback.empty and any(t.said for t in steer.earlier):
        notes = ["No new words: the search uses this image and what the conversation "
                 "remembers."]
    if len(results) < len(hits):
        notes.append(f"{len(hits) - len(results)} result(s) vanished from the database since "
                     "the index was loaded; reload the page to refresh the index.")
    log.info("query k=%d category=%s turns=%d clicks=%d demoted=%d: encode %.0f ms, "
             "search %.1f ms, fetch %.0f ms", k, category, len(steer.earlier) + 1,
             len(liked) + len(disliked), len(demoted), 1e3 * (t1 - t0), 1e3 * (t2 - t1),
             1e3 * (t3 - t2))
    return Turn(
        reference=reference,
        feedback=feedback.text,
        results=results,
        notes=notes,
        k=k,
        category=category,
        latency_ms=1e3 * (t3 - t0),
        likes=steer.likes,
        dislikes=steer.dislikes,
        removed=steer.removed,
        show_seen=steer.show_seen,
        basis=steer.basis(k, category),
    )


def wait_for_database(call: Callable[[], T], wait_s: float,
                      on_wait: Callable[[], None] | None = None, pause_s: float = 0.5) -> T:
    """``call()``, tried again while the database does not answer, for up to ``wait_s``.

    Why: a database restart takes seconds; an action that waits through it answers as soon as
    the database is back, where failing at once made every shopper retry by hand. The
    indexer's retry loop with short, fixed pauses: each try already waits up to pymongo's
    server-selection timeout, rechecking the server twice a second, so a try that starts
    during the outage succeeds right after it. ``on_wait`` runs once, when the first try failed
    (the page says "reconnecting"); after ``wait_s`` the last error is raised, for the page to
    word as before."""
    policy = RetryPolicy(wait_s=wait_s, first_delay_s=pause_s, max_delay_s=pause_s)
    try:
        return call_with_retry(call, "a shopper's action", policy,
                               transient=(DatabaseUnavailableError,
                                          pymongo.errors.ConnectionFailure),
                               on_first_failure=on_wait)
    except DatabaseOutage as exc:
        raise exc.cause from None
