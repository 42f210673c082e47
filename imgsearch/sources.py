"""A synced collection's files: listed from a local folder or an S3 bucket, read back by URI.

Ids are stable per file: ``file_uuid(hashid, key)`` (UUIDv5 of the engine and the file's
key), so a re-sync finds the same documents and Similarix clients keep their file uuids.
S3 objects are fetched through presigned GET URLs (the indexer only ever fetches http(s) or
paths), with ETag as the md5 (true for single-part uploads, which is what image files are).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgsearch.engine_config import EngineConfig, SourceSpec
from imgsearch.errors import ConfigError, ImageFetchError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
PRESIGNED_TTL_S = 3600
_NAMESPACE = uuid.UUID("6f1d2c0e-7f0b-4b59-9a51-1f3c2b8a9d10")


def collection_uuid(hashid: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"collection:{hashid}"))


def file_uuid(hashid: str, key: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"file:{hashid}:{key}"))


@dataclass(frozen=True)
class SourceFile:
    key: str  # path relative to the folder, or the object key
    uri: str  # the file's path, or s3://bucket/key
    fetch: str  # what to fetch: the path, or a presigned https URL
    size: int
    md5: str


def s3_client(spec: SourceSpec) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=spec.endpoint_url, region_name=spec.region)


def list_files(config: EngineConfig) -> Iterator[SourceFile]:
    """Every image file of the engine's source, in key order."""
    spec = _source(config)
    if spec.type == "folder":
        yield from _folder_files(_folder(spec))
    else:
        yield from _s3_files(spec)


def _source(config: EngineConfig) -> SourceSpec:
    if config.source is None:
        raise ConfigError(f"engine {config.hashid!r} has no source to sync from")
    return config.source


def _folder(spec: SourceSpec) -> Path:
    assert spec.path is not None
    if not spec.path.is_dir():
        raise ConfigError(f"source folder {spec.path} does not exist")
    return spec.path


def _folder_files(root: Path) -> Iterator[SourceFile]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.suffix.lower() not in IMAGE_SUFFIXES or name.startswith("."):
                continue
            digest = hashlib.md5()
            with path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
            key = path.relative_to(root).as_posix()
            yield SourceFile(key, str(path), str(path), path.stat().st_size, digest.hexdigest())


def _s3_files(spec: SourceSpec) -> Iterator[SourceFile]:
    from botocore.exceptions import BotoCoreError, ClientError

    client = s3_client(spec)
    try:
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=spec.bucket, Prefix=spec.prefix
        )
        for page in pages:
            for obj in page.get("Contents", []):
                key = str(obj["Key"])
                if Path(key).suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                url = client.generate_presigned_url(
                    "get_object",
                    Params={"Bucket": spec.bucket, "Key": key},
                    ExpiresIn=PRESIGNED_TTL_S,
                )
                uri = f"s3://{spec.bucket}/{key}"
                md5 = str(obj.get("ETag", "")).strip('"')
                yield SourceFile(key, uri, url, int(obj.get("Size", 0)), md5)
    except (BotoCoreError, ClientError) as exc:
        raise ConfigError(f"cannot list s3://{spec.bucket}/{spec.prefix}: {exc}") from exc


def read_file(config: EngineConfig, uri: str, max_bytes: int) -> bytes:
    """The bytes of one synced file (download, thumbnail), from its folder or bucket."""
    spec = _source(config)
    if spec.type == "folder":
        root = _folder(spec).resolve()
        path = Path(uri).resolve()
        if root not in path.parents or not path.is_file():
            raise ImageFetchError("the file is not in this collection's folder")
        if path.stat().st_size > max_bytes:
            raise ImageFetchError("the file is larger than the gateway serves")
        return path.read_bytes()
    prefix = f"s3://{spec.bucket}/"
    if not uri.startswith(prefix):
        raise ImageFetchError("the file is not in this collection's bucket")
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        obj = s3_client(spec).get_object(Bucket=spec.bucket, Key=uri[len(prefix) :])
        if int(obj.get("ContentLength", 0)) > max_bytes:
            raise ImageFetchError("the file is larger than the gateway serves")
        data: bytes = obj["Body"].read()
    except (BotoCoreError, ClientError) as exc:
        raise ImageFetchError(f"cannot read {uri}: {exc}") from exc
    return data
