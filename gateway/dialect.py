"""What the gateway needs to know of an API dialect to mount it and answer its errors."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter

from imgsearch.errors import ImgSearchError

# (HTTP status, message) → the API's JSON error body
ErrorBody = Callable[[int, str], dict[str, Any]]


def plain_error_body(status: int, message: str) -> dict[str, Any]:
    """``{"error": message}``: the gateway's own shape (operations, demo) and Doofinder's."""
    return {"error": message}


def under_prefix(path: str, prefix: str) -> bool:
    """``path`` is ``prefix`` or below it, whole segments only: ``/api/collection/`` covers
    ``/api/collection`` and ``/api/collection/1/info`` but not ``/api/collections/``."""
    stem = prefix.rstrip("/")
    return path == stem or path.startswith(stem + "/")


@dataclass(frozen=True)
class Dialect:
    """One API the gateway speaks: its routes, its error shape and its words for errors."""

    name: str
    router: APIRouter
    path_prefix: str  # every route of the dialect starts with it; errors there use its shape
    error_body: ErrorBody = plain_error_body
    # The API's own message for a neutral error class (first match in order), e.g. Doofinder's
    # "Mapping not found" for an unknown engine; other errors keep their message.
    messages: Mapping[type[ImgSearchError], str] = field(default_factory=dict)
    # The API's own status for one of ours it never sends (e.g. Solr has no 424: 500).
    statuses: Mapping[int, int] = field(default_factory=dict)
    # Further prefixes (or exact paths) of the dialect outside ``path_prefix``, e.g. the
    # collection API's ``/api/verify`` beside ``/api/collection/``.
    extra_prefixes: tuple[str, ...] = ()

    @property
    def prefixes(self) -> tuple[str, ...]:
        return (self.path_prefix, *self.extra_prefixes)

    def prefix_of(self, path: str) -> str | None:
        """The longest of the dialect's prefixes that ``path`` falls under, segment-wise."""
        return max((p for p in self.prefixes if under_prefix(path, p)), key=len, default=None)

    def message_for(self, exc: ImgSearchError) -> str | None:
        for cls, text in self.messages.items():
            if isinstance(exc, cls):
                return text
        return None
