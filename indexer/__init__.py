"""The indexer: catalog feed → embedders → OpenSearch documents behind a versioned alias.

feeds.py      read JSONL / CSV / image folders into typed records (pure, streaming)
documents.py  record + vectors → OpenSearch document and its content hash (pure)
lifecycle.py  versioned indexes ``<alias>_v<N>``, alias swaps, embedder checks
pipeline.py   fetch/decode in threads, embed in batches, bulk write, incremental skips
report.py     the JSONL report (one line per record + summary) and progress output
cli.py        ``imgsearch index FEED --engine CONFIG``
"""
