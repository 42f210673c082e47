"""Collections created over HTTP: their records (name, access, engine config) in the system
index, and the engine config a new one gets from the gateway's template.

A collection's engine is served as hashid ``collection-<id>`` from alias
``imgsearch-collection-<id>`` (versioned ``_v<N>`` like every engine), so renaming it changes
nothing in OpenSearch.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from gateway.service.system_index import SystemIndex
from imgsearch.engine_config import EngineConfig, load_engine_config
from imgsearch.errors import ConfigError, UnknownEngine

KIND = "collection"
HASHID_PREFIX = "collection-"
ReadAccess = Literal["open", "key"]


def now() -> str:
    return datetime.now(UTC).isoformat()


def hashid_of(collection_id: int) -> str:
    return f"{HASHID_PREFIX}{collection_id}"


def id_of(hashid: str) -> int | None:
    """The collection id behind an engine hashid, or ``None`` for a file engine's."""
    number = hashid.removeprefix(HASHID_PREFIX)
    return int(number) if hashid.startswith(HASHID_PREFIX) and number.isdigit() else None


class CollectionRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    id: int
    name: str
    heidicon_tag: str | None = None
    read_access: ReadAccess = "open"
    config: EngineConfig
    created_at: str
    last_modified: str
    # when the content last changed (creation or an update); fine-tuning compares with it
    content_modified: str | None = None

    @property
    def hashid(self) -> str:
        return hashid_of(self.id)


def template_config(path: Path | None) -> dict[str, Any]:
    """The engine config a new collection starts from: a file (``collection_template``), or
    the project's default embedders (CLIP ViT-B-32) with no declared fields."""
    if path is None:
        return {"hashid": "template", "alias": "template", "category_from_folder": None}
    return load_engine_config(path).model_dump(mode="json")


class CollectionStore:
    def __init__(self, system: SystemIndex, template: dict[str, Any]) -> None:
        self.system = system
        self.template = template

    def new(self, name: str, heidicon_tag: str | None, read_access: ReadAccess) -> CollectionRecord:
        collection_id = self.system.next_number(KIND)
        hashid = hashid_of(collection_id)
        try:
            config = EngineConfig.model_validate(
                {**self.template, "hashid": hashid, "alias": f"imgsearch-{hashid}"}
            )
        except ValidationError as exc:
            raise ConfigError(f"collection_template is not a valid engine config: {exc}") from exc
        stamp = now()
        record = CollectionRecord(
            id=collection_id, name=name, heidicon_tag=heidicon_tag, read_access=read_access,
            config=config, created_at=stamp, last_modified=stamp, content_modified=stamp,
        )  # fmt: skip
        self.save(record)
        return record

    def save(self, record: CollectionRecord) -> None:
        self.system.put(f"{KIND}:{record.id}", {"kind": KIND, **record.model_dump(mode="json")})

    def get(self, collection_id: int) -> CollectionRecord:
        doc = self.system.get(f"{KIND}:{collection_id}")
        if doc is None:
            raise UnknownEngine(f"Collection {collection_id} not found")
        return CollectionRecord.model_validate(doc)

    def all(self) -> list[CollectionRecord]:
        return [CollectionRecord.model_validate(doc) for doc in self.system.all(KIND)]

    def remove(self, collection_id: int) -> None:
        self.system.delete(f"{KIND}:{collection_id}")

    def load_config(self, hashid: str) -> EngineConfig | None:
        """The engine registry's fall-through: a collection's config by its hashid."""
        collection_id = id_of(hashid)
        if collection_id is None:
            return None
        doc = self.system.get(f"{KIND}:{collection_id}")
        return None if doc is None else CollectionRecord.model_validate(doc).config
