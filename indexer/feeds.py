"""Catalog feeds: JSONL, CSV or a folder of images, read lazily into typed records.

Pure (no OpenSearch, no torch) and streaming: a feed is never held in memory. Each item is
either a ``FeedRecord`` or a ``FeedError`` (missing id, missing image, duplicate id, a field
of the wrong type); bad rows never raise, so the pipeline can report them.

Duplicate detection keeps a 64-bit hash per id seen (``SeenIds``), about 100 bytes per
record instead of the record itself; the same set later drives ``--prune``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from imgsearch.engine_config import EngineConfig, FieldSpec, FieldType
from imgsearch.errors import ConfigError
from imgsearch.sources import IMAGE_SUFFIXES, file_uuid, list_files

MAX_ID_BYTES = 512  # OpenSearch's limit for ``_id``
_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f"})


@dataclass(frozen=True)
class FeedRecord:
    """One catalog item: ``image`` is what to fetch, ``image_url`` what the feed said."""

    ref: str
    id: str
    image: str
    image_url: str
    fields: dict[str, object] = field(default_factory=dict)
    data: bytes | None = None  # the image itself when the caller already has it (API writes)


@dataclass(frozen=True)
class FeedError:
    """A row that cannot become a document; ``id`` is ``None`` when the row has none."""

    ref: str
    id: str | None
    reason: str


FeedItem = FeedRecord | FeedError


class FieldTypeError(ValueError):
    """A value does not fit its declared field type."""


class SeenIds:
    """The ids a feed produced so far, as 64-bit hashes (duplicates and ``--prune``)."""

    def __init__(self) -> None:
        self._hashes: set[int] = set()

    @staticmethod
    def _key(doc_id: str) -> int:
        return int.from_bytes(hashlib.blake2b(doc_id.encode(), digest_size=8).digest(), "big")

    def add(self, doc_id: str) -> bool:
        """Record ``doc_id``; ``False`` if it was already there."""
        key = self._key(doc_id)
        if key in self._hashes:
            return False
        self._hashes.add(key)
        return True

    def __contains__(self, doc_id: object) -> bool:
        return isinstance(doc_id, str) and self._key(doc_id) in self._hashes

    def __len__(self) -> int:
        return len(self._hashes)


def coerce_value(spec: FieldSpec, value: object) -> object:
    """The JSON value stored for ``value`` in a field of ``spec.type``; raises FieldTypeError.

    Strings are parsed (CSV cells are always strings); native JSON values must fit the type.
    """
    kind = spec.type
    if kind is FieldType.KEYWORD:
        if isinstance(value, list):
            if not all(isinstance(v, str | int) and not isinstance(v, bool) for v in value):
                raise FieldTypeError("expected a list of strings")
            return [str(v) for v in value]
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)
        raise FieldTypeError("expected a string")
    if kind is FieldType.TEXT:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
        raise FieldTypeError("expected a string")
    if kind is FieldType.NUMBER:
        return _number(value)
    if kind is FieldType.BOOLEAN:
        return _boolean(value)
    return _date(value)


def _number(value: object) -> float | int:
    if isinstance(value, bool):
        raise FieldTypeError("expected a number, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        number = value
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise FieldTypeError(f"expected a number, got {value[:40]!r}") from None
    else:
        raise FieldTypeError("expected a number")
    if not math.isfinite(number):
        raise FieldTypeError("expected a finite number")
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


def _boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise FieldTypeError(f"expected a boolean, got {value[:40]!r}")
    raise FieldTypeError("expected a boolean")


def _date(value: object) -> str:
    if not isinstance(value, str):
        raise FieldTypeError("expected an ISO 8601 date string")
    text = value.strip()
    try:
        if len(text) == 10:
            return date.fromisoformat(text).isoformat()
        return datetime.fromisoformat(text).isoformat()
    except ValueError:
        raise FieldTypeError(f"expected an ISO 8601 date, got {value[:40]!r}") from None


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == []


class RowParser:
    """Turns raw rows (dicts) of one feed into records, checking ids, images and types."""

    def __init__(self, config: EngineConfig, base_dir: Path, seen: SeenIds) -> None:
        self.config = config
        self.base_dir = base_dir
        self.seen = seen

    def parse(self, ref: str, row: dict[str, object]) -> FeedItem:
        raw_id = row.get(self.config.id_field)
        if _is_missing(raw_id):
            return FeedError(ref, None, f"missing id field {self.config.id_field!r}")
        if not isinstance(raw_id, str | int) or isinstance(raw_id, bool):
            return FeedError(ref, None, "id must be a string or an integer")
        doc_id = str(raw_id).strip()
        if len(doc_id.encode()) > MAX_ID_BYTES:
            return FeedError(ref, doc_id[:64], f"id longer than {MAX_ID_BYTES} bytes")
        if not self.seen.add(doc_id):
            return FeedError(ref, doc_id, "duplicate id (an earlier row has it)")
        image = row.get(self.config.image_field)
        if _is_missing(image):
            return FeedError(ref, doc_id, f"missing image field {self.config.image_field!r}")
        if not isinstance(image, str):
            return FeedError(ref, doc_id, "image must be a URL or a path string")
        fields: dict[str, object] = {}
        for name, spec in self.config.fields.items():
            value = row.get(name)
            if _is_missing(value):
                if spec.required:
                    return FeedError(ref, doc_id, f"missing required field {name!r}")
                continue
            try:
                fields[name] = coerce_value(spec, value)
            except FieldTypeError as exc:
                return FeedError(ref, doc_id, f"field {name!r}: {exc}")
        return FeedRecord(ref, doc_id, self._resolve(image.strip()), image.strip(), fields)

    def _resolve(self, image: str) -> str:
        if image.startswith(("http://", "https://")):
            return image
        path = Path(image)
        return str(path if path.is_absolute() else self.base_dir / path)


def read_jsonl(path: Path, config: EngineConfig, seen: SeenIds) -> Iterator[FeedItem]:
    parser = RowParser(config, path.parent, seen)
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            ref = f"{path.name}:{number}"
            try:
                row = json.loads(line.decode("utf-8"))
            except ValueError as exc:
                yield FeedError(ref, None, f"invalid JSON: {exc}")
                continue
            if not isinstance(row, dict):
                yield FeedError(ref, None, "expected a JSON object")
                continue
            yield parser.parse(ref, row)


def read_csv(path: Path, config: EngineConfig, seen: SeenIds) -> Iterator[FeedItem]:
    parser = RowParser(config, path.parent, seen)
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            ref = f"{path.name}:{reader.line_num}"
            if None in row:
                yield FeedError(ref, None, "more cells than header columns")
                continue
            yield parser.parse(ref, dict(row))


def read_folder(root: Path, config: EngineConfig, seen: SeenIds) -> Iterator[FeedItem]:
    """Every image under ``root``; id = path relative to ``root``, category = its folder."""
    category = config.category_from_folder
    if category is not None and category not in config.fields:
        category = None  # the mapping is strict: only declared fields can be written
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        folder = Path(dirpath)
        for name in sorted(filenames):
            path = folder / name
            if path.suffix.lower() not in IMAGE_SUFFIXES or name.startswith("."):
                continue
            rel = path.relative_to(root).as_posix()
            seen.add(rel)
            fields: dict[str, object] = {}
            if category is not None and folder != root:
                fields[category] = folder.name
            yield FeedRecord(rel, rel, str(path), rel, fields)


def read_source(config: EngineConfig, seen: SeenIds) -> Iterator[FeedItem]:
    """The files of the engine's folder or bucket (``imgsearch.sources``), as records whose
    id is the file's uuid and whose fields are its name, size, md5 and URI."""
    for file in list_files(config):
        doc_id = file_uuid(config.hashid, file.key)
        seen.add(doc_id)
        fields: dict[str, object] = {
            "file_name": Path(file.key).name,
            "file_size": file.size,
            "md5": file.md5,
            "file_uri": file.uri,
        }
        yield FeedRecord(file.key, doc_id, file.fetch, file.uri, fields)


def read_feed(path: Path, config: EngineConfig, seen: SeenIds | None = None) -> Iterator[FeedItem]:
    """Dispatch on the feed's kind: a folder, ``*.jsonl``/``*.ndjson`` or ``*.csv``.

    Every id the feed mentions (good rows and bad rows that have one) lands in ``seen``.
    """
    seen = SeenIds() if seen is None else seen
    if path.is_dir():
        return read_folder(path, config, seen)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ConfigError(f"feed not found: {path}")
    if suffix in (".jsonl", ".ndjson"):
        return read_jsonl(path, config, seen)
    if suffix == ".csv":
        return read_csv(path, config, seen)
    raise ConfigError(f"unknown feed type {suffix!r}: use a folder, .jsonl, .ndjson or .csv")


def count_feed(path: Path) -> int:
    """A cheap upper bound on the number of records (for progress ETA only)."""
    if path.is_dir():
        return sum(
            1
            for _, _, names in os.walk(path)
            for name in names
            if Path(name).suffix.lower() in IMAGE_SUFFIXES
        )
    with path.open("rb") as handle:
        lines = sum(1 for _ in handle)
    return max(lines - 1, 0) if path.suffix.lower() == ".csv" else lines
