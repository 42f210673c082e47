"""Per-collection fine-tuning: a small adapter (chained stages) learnt on a frozen embedder.

``adapter`` is the adapter itself (apply, compose, content hash, the version string it gives
an embedder), ``train`` learns one from a collection's vectors, ``store`` keeps adapters in
OpenSearch where every gateway instance can load them by hash.
"""
