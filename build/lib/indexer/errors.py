"""Typed errors of the indexer and search layer (a malformed setting is
:class:`project_settings.SettingsError`).

Every error carries a message written for the person at the keyboard: what is wrong and what
to do next. The app shows ``str(err)`` as-is, so messages never contain credentials (URIs are
masked with :func:`indexer.db.store.mask_uri` before they get here).
"""

from __future__ import annotations


class IndexerError(RuntimeError):
    """Base class: every failure the indexer reports on purpose."""


class DatabaseUnavailableError(IndexerError):
    """MongoDB (or the embedded server) cannot be reached."""


class EmbeddedDBError(IndexerError):
    """The embedded SecantusDB server could not be started, reused or stopped."""


class PortInUseError(EmbeddedDBError):
    """The embedded server's port is taken by a process that is not our server."""


class EmptyCatalogError(IndexerError):
    """No vectors are stored for the requested model fingerprint (nothing indexed yet)."""


class FingerprintMismatchError(IndexerError):
    """The stored vectors were made by a different checkpoint than the one in use."""


class DimensionMismatchError(IndexerError):
    """The checkpoint's vector dimension differs from the vectors already stored."""
