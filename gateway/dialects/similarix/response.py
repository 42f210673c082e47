"""Neutral results → Similarix's ``{version, success, info, result}`` envelope. Pure.

``distance`` is the cosine distance ``1 - cos`` between the query and the file (0 = the
same picture; lower is more similar), as Similarix reports it.
"""

from __future__ import annotations

from typing import Any

from gateway.search.distances import cosine_from_score
from gateway.search.model import Hit
from imgsearch.engine_config import EngineConfig
from imgsearch.sources import collection_uuid

VERSION = "1.0.2"


def envelope(result: dict[str, Any], info: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"version": VERSION, "success": True, "info": info or {}, "result": result}


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"version": VERSION, "success": False, "info": {"error": message, "status": status},
            "result": {}}  # fmt: skip


def cosine_distance(score: float) -> float:
    return round(1.0 - cosine_from_score(score), 6)


def file_entry(hit: Hit, base_url: str) -> dict[str, Any]:
    source = hit.source
    uri = str(source.get("file_uri", ""))
    entry: dict[str, Any] = {
        "uuid": hit.id,
        "file_name": source.get("file_name"),
        "file_size": source.get("file_size"),
        "md5": source.get("md5"),
        "thumbnail": f"{base_url}api/files/{hit.id}/thumbnail/",
        "download_url": f"{base_url}api/files/{hit.id}/download/",
        "distance": cosine_distance(hit.score),
    }
    entry["s3_uri" if uri.startswith("s3://") else "path"] = uri
    return entry


def collection_entry(
    config: EngineConfig, state: dict[str, Any], stats: dict[str, int]
) -> dict[str, Any]:
    source = config.source
    assert source is not None
    entry: dict[str, Any] = {
        "uuid": collection_uuid(config.hashid),
        "name": config.hashid,
        "type": source.type,
        "sync_status": state.get("status", "never"),
        "last_sync": state.get("last_sync"),
        "auto_sync_interval": f"{source.interval_s}s" if source.interval_s else None,
        "stats": stats,
    }
    if source.type == "s3":
        entry.update(bucket=source.bucket, folder=source.prefix, region=source.region)
    else:
        entry.update(folder=str(source.path))
    return entry
