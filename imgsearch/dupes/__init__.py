"""Near-duplicate detection that survives resizing, recompression, crops, mirroring and borders.

``frame`` finds the content inside a uniform border; ``signature`` reduces a photo to what the
detector keeps (grey and colour thumbnails of that content); ``hashes`` turns a thumbnail into
64-bit box hashes (an item's stored centre and whole hashes, a query's crop/mirror probes);
``verify`` is the second stage (aligned details and colours); ``match`` puts them together for
one query and one item. See docs/indexer.md#near-duplicates.
"""
