"""The catalog database: ``store`` (connecting, the two collections), ``embedded`` (the
SecantusDB server the project starts when no MongoDB is configured) and the
``python -m indexer.db start|stop|status`` command (``cli``)."""
