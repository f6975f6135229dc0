"""Sessions that survive: a chain of turns saved in MongoDB under an unguessable link token.

The page keeps its chain in Streamlit's session state, which a reload, an app restart or a
shared link loses. So every change is also saved here, under the token in the page's address
(``?session=<token>``), and a page opened with a token restores the chain.

What is stored (``sessions`` collection, beside the catalog; schema version 1)::

    {_id: sha256(token) hex, v: 1, model: <retriever fingerprint>,
     reference: {kind, key, label},                     # what the next search starts from
     uploads: [{key, label, data: <the uploaded bytes>}],  # so the same image is encoded again
     turns: [{reference: {kind, key, label}, feedback, removed: [clause], k, category,
              show_seen, likes: [id], dislikes: [id], chosen: id | null,
              results: [[id, score]], notes: [str]}],
     created_at, updated_at, expires_at}

Catalog references are item ids (their image is read from the catalog again); uploads keep
their bytes as sent, so a restored session encodes exactly the same pixels and gives the same
results. Only a hash of the token is stored: a copy of the database does not reveal live
links, and no session can be found without its token (there is no listing; the lookup is by
``_id``). Sessions expire ``ttl_days`` after their last change: a TTL index on ``expires_at``
deletes them (MongoDB and SecantusDB sweep about once a minute), and a read checks the date
itself, so an expired session is never restored between sweeps.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bson
import pymongo.errors
from pymongo.collection import Collection

from app.history import History, Reference, ResultItem, Turn
from app.memory import shown
from app.pipeline import reference_from_document, reference_from_upload, result_from_document
from imaging import ImageLoadError

log = logging.getLogger(__name__)

SESSIONS_COLLECTION = "sessions"
SCHEMA_VERSION = 1
TOKEN_BYTES = 32  # secrets.token_urlsafe(32): 256 random bits, 43 URL-safe characters
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
NOT_FOUND = "Session not found — start a new search"


class SessionNotFound(LookupError):
    """No live session for this token (malformed, unknown, expired or unreadable)."""


class SessionTooLarge(ValueError):
    """Saving would exceed the session's size cap; the message says which and what to do."""


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def is_token(token: object) -> bool:
    """True for a string shaped like :func:`new_token`'s (checked before any database read)."""
    return isinstance(token, str) and _TOKEN.fullmatch(token) is not None


def token_id(token: str) -> str:
    """The stored ``_id`` of a token's session: its SHA-256, never the token itself."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def _utc(when: datetime) -> datetime:
    """pymongo returns naive UTC datetimes unless the client is tz-aware."""
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class SessionStore:
    """Saved sessions in one collection, with their lifetime and size caps."""

    def __init__(self, collection: Collection, *, ttl_days: float, max_turns: int,
                 max_bytes: int, now: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.collection = collection
        self.ttl = timedelta(days=ttl_days)
        self.max_turns = max_turns
        self.max_bytes = max_bytes
        self.now = now
        self._indexed = False

    def ensure_indexes(self) -> None:
        """The TTL index that deletes expired sessions (idempotent)."""
        self.collection.create_index("expires_at", expireAfterSeconds=0, name="expires_at_ttl")
        self._indexed = True

    def save(self, token: str, body: Mapping[str, Any]) -> int:
        """Create or replace the session of ``token``, living ``ttl`` from now; returns its size
        in bytes. Raises SessionTooLarge above the caps (nothing is written then)."""
        if not is_token(token):
            raise ValueError("not a session token")
        turns = len(body.get("turns", ()))
        if turns > self.max_turns:
            raise SessionTooLarge(f"it has {turns} turns, and a session keeps at most "
                                  f"{self.max_turns} (SESSION_MAX_TURNS).")
        now = self.now()
        fields = {**body, "updated_at": now, "expires_at": now + self.ttl}
        size = len(bson.encode({"_id": token_id(token), "created_at": now, **fields}))
        if size > self.max_bytes:
            raise SessionTooLarge(f"it would take {size / 2**20:.1f} MB, and a session keeps "
                                  f"at most {self.max_bytes / 2**20:.1f} MB "
                                  "(SESSION_MAX_BYTES); a smaller photo fits.")
        if not self._indexed:
            self.ensure_indexes()
        self.collection.update_one({"_id": token_id(token)},
                                   {"$set": fields, "$setOnInsert": {"created_at": now}},
                                   upsert=True)
        return size

    def load(self, token: object) -> dict[str, Any]:
        """The live session of ``token``; SessionNotFound when the token is malformed, unknown
        or expired (an expired one is deleted on the way)."""
        if not is_token(token):
            raise SessionNotFound("malformed token")
        doc = self.collection.find_one({"_id": token_id(token)})
        if doc is None:
            raise SessionNotFound("no such session")
        expires = doc.get("expires_at")
        if not isinstance(expires, datetime) or _utc(expires) <= self.now():
            self._forget(doc["_id"])
            raise SessionNotFound("expired")
        return doc

    def delete(self, token: str) -> bool:
        """Delete the session of ``token``; True when there was one."""
        if not is_token(token):
            return False
        return self.collection.delete_one({"_id": token_id(token)}).deleted_count == 1

    def _forget(self, doc_id: str) -> None:
        try:
            self.collection.delete_one({"_id": doc_id})
        except pymongo.errors.PyMongoError as exc:  # the TTL sweep will get it
            log.info("expired session not deleted now (%s)", type(exc).__name__)


# ---- the chain as a document, and back ------------------------------------------------------
def _reference_doc(ref: Reference) -> dict[str, str]:
    return {"kind": ref.kind, "key": ref.key, "label": ref.label}


def chain_document(history: History, model: str = "", *, with_data: bool = True
                   ) -> dict[str, Any]:
    """The stored form of ``history`` (see the module docstring). ``with_data=False`` leaves
    the uploaded bytes out (their key is their hash): enough to tell whether anything changed."""
    if history.reference is None:
        raise ValueError("an empty chain is not saved")
    refs = [history.reference, *(t.reference for t in history.turns)]
    uploads = {r.key: r for r in refs if r.kind == "upload"}
    return {
        "v": SCHEMA_VERSION,
        "model": model,
        "reference": _reference_doc(history.reference),
        "uploads": [{"key": r.key, "label": r.label,
                     **({"data": bson.Binary(r.data or b"")} if with_data else {})}
                    for r in uploads.values()],
        "turns": [{
            "reference": _reference_doc(t.reference),
            "feedback": t.feedback,
            "removed": list(t.removed),
            "k": t.k,
            "category": t.category,
            "show_seen": t.show_seen,
            "likes": list(t.likes),
            "dislikes": list(t.dislikes),
            "chosen": t.chosen.item_id if t.chosen else None,
            "results": [[r.item_id, r.score] for r in t.results],
            "notes": list(t.notes),
        } for t in history.turns],
    }


def chain_signature(history: History, model: str = "") -> str:
    """A digest of everything saved: equal digests, nothing new to save."""
    doc = chain_document(history, model, with_data=False)
    return hashlib.sha256(bson.encode(doc)).hexdigest()


class SessionDataError(ValueError):
    """A stored session that cannot be turned back into a chain (its items are gone, say)."""


def restore_chain(doc: Mapping[str, Any], fetch: Callable[[list[str]], list[dict]],
                  image_dirs: Sequence[Path] = ()) -> History:
    """The chain of a stored session. ``fetch`` returns catalog documents by id (one query for
    every reference and result). The results on display come back without a basis, so the
    page searches them again: what it shows is computed now, from the same inputs.

    Raises SessionDataError when the document is not a session of this schema or a reference
    cannot be read back; database errors of ``fetch`` pass through."""
    try:
        if doc.get("v") != SCHEMA_VERSION:
            raise SessionDataError(f"session schema {doc.get('v')!r}, expected {SCHEMA_VERSION}")
        turns_doc = list(doc["turns"])
        uploads = {u["key"]: u for u in doc["uploads"]}
        ids = {t["reference"]["key"] for t in turns_doc if t["reference"]["kind"] == "catalog"}
        ids |= {r[0] for t in turns_doc for r in t["results"]}
        if doc["reference"]["kind"] == "catalog":
            ids.add(doc["reference"]["key"])
        catalog = {str(d["_id"]): d for d in fetch(sorted(ids))} if ids else {}
        refs: dict[str, Reference] = {}

        def reference(spec: Mapping[str, str]) -> Reference:
            key = spec["key"]
            if key not in refs:
                refs[key] = _read_reference(spec, uploads, catalog, image_dirs)
            return refs[key]

        history = History(reference=reference(doc["reference"]))
        for t in turns_doc:
            before = shown(history.turns)
            results = [result_from_document(catalog[i], float(s), seen=i in before)
                       for i, s in t["results"] if i in catalog]
            chosen = next((r for r in results if r.item_id == t["chosen"]), None)
            if t["chosen"] is not None and chosen is None:
                raise SessionDataError(f"picked item {t['chosen']} is no longer in the catalog")
            history.turns.append(_turn(t, reference(t["reference"]), results, chosen))
        return history
    except (KeyError, TypeError, ValueError, IndexError, ImageLoadError) as exc:
        if isinstance(exc, SessionDataError):
            raise
        raise SessionDataError(f"{type(exc).__name__}: {exc}") from exc


def _read_reference(spec: Mapping[str, str], uploads: Mapping[str, Mapping[str, Any]],
                    catalog: Mapping[str, dict], image_dirs: Sequence[Path]) -> Reference:
    key = spec["key"]
    if spec["kind"] == "upload":
        data = bytes(uploads[key]["data"])
        if Reference.upload_key(data) != key:
            raise SessionDataError(f"the stored photo of {key} does not match its key")
        return reference_from_upload(data, str(uploads[key]["label"]))
    if key not in catalog:
        raise SessionDataError(f"reference item {key} is no longer in the catalog")
    return reference_from_document(catalog[key], image_dirs)


def _turn(t: Mapping[str, Any], reference: Reference, results: list[ResultItem],
          chosen: ResultItem | None) -> Turn:
    return Turn(reference=reference, feedback=str(t["feedback"]), results=results,
                notes=[str(n) for n in t.get("notes", [])], k=int(t["k"]),
                category=t["category"], chosen=chosen,
                likes=tuple(map(str, t["likes"])), dislikes=tuple(map(str, t["dislikes"])),
                removed=tuple(map(str, t["removed"])), show_seen=bool(t["show_seen"]))
