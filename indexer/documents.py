"""Build the OpenSearch document for one record, and its content hash. Pure.

The content hash decides whether a record must be re-embedded: it covers the image bytes,
the image URL, the normalised fields and every embedder's name/version/dim, so changing any
of them (including upgrading a model) re-embeds the record on the next run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from imgsearch.embedders.base import EmbedderInfo
from indexer.feeds import FeedRecord

HASH_SCHEME = "imgsearch-doc-v1"


def canonical_json(value: object) -> str:
    """Stable JSON: sorted keys, no spaces, UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(
    image_bytes: bytes,
    image_url: str,
    fields: Mapping[str, object],
    infos: Mapping[str, EmbedderInfo],
) -> str:
    """``sha256:<hex>`` over the image bytes, the URL, the fields and the embedder versions."""
    described = {
        "scheme": HASH_SCHEME,
        "image_sha256": hashlib.sha256(image_bytes).hexdigest(),
        "image_url": image_url,
        "fields": dict(fields),
        "embedders": {name: info.as_meta() for name, info in infos.items()},
    }
    return "sha256:" + hashlib.sha256(canonical_json(described).encode()).hexdigest()


def build_document(
    record: FeedRecord,
    vectors: Mapping[str, object],
    extra_fields: Mapping[str, object],
    digest: str,
    indexed_at: str,
) -> dict[str, Any]:
    """The ``_source`` of one document; feed fields win over derived ones of the same name."""
    return {
        **extra_fields,
        **record.fields,
        **vectors,
        "id": record.id,
        "id_md5": hashlib.md5(record.id.encode()).hexdigest(),  # Doofinder dfid lookups
        "image_url": record.image_url,
        "content_hash": digest,
        "indexed_at": indexed_at,
    }


def index_action(
    index: str, doc_id: str, source: dict[str, Any], op_type: str = "index"
) -> dict[str, Any]:
    """A ``streaming_bulk`` action; ``_id`` = the record id, so rewrites are idempotent.

    ``op_type`` ``create`` makes OpenSearch refuse an id that exists (409), atomically.
    """
    return {"_op_type": op_type, "_index": index, "_id": doc_id, "_source": source}
