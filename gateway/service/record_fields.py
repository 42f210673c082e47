"""Type-check the catalog fields a client writes, against the engine's declared fields."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.search.model import BOOKKEEPING_FIELDS, ID_FIELD
from gateway.search.records import IMAGE_URL_FIELD
from imgsearch.engine_config import EngineConfig
from imgsearch.errors import InvalidRequest, UnknownField
from indexer.feeds import FieldTypeError, coerce_value

_RESERVED = frozenset({ID_FIELD, IMAGE_URL_FIELD, *BOOKKEEPING_FIELDS})


def typed_fields(
    raw: Mapping[str, object], config: EngineConfig, *, allow_null: bool = False
) -> dict[str, object]:
    """The stored values for ``raw``; unknown, reserved or ill-typed fields are refused.

    ``allow_null`` (updates) lets ``None`` through, which removes the field.
    """
    out: dict[str, object] = {}
    for name, value in raw.items():
        if name in _RESERVED or name in config.vectors:
            raise InvalidRequest(f"field {name!r} is managed by the index and cannot be written")
        spec = config.fields.get(name)
        if spec is None:
            raise UnknownField(f"unknown field {name!r} (not in the engine's fields)")
        if value is None or value == []:
            if allow_null:
                out[name] = None
            continue
        try:
            out[name] = coerce_value(spec, value)
        except FieldTypeError as exc:
            raise InvalidRequest(f"field {name!r}: {exc}") from None
    return out
