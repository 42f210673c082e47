"""The project's one error hierarchy. ``gateway/errors.py`` maps it to HTTP, in each API's shape.

ImgSearchError
├── InvalidRequest            the client sent something we cannot use
│   ├── MissingFields         required fields absent
│   ├── UnknownField          filter/facet/sort on a field the engine does not have
│   ├── FeatureDisabled       e.g. image search switched off for an engine
│   └── ImageError            the image itself is the problem
│       ├── ImageDecodeError  not an image, truncated, unsupported format
│       ├── ImageTooLarge     over the pixel cap (decompression bombs)
│       └── ImageFetchError   an image URL/path could not be read
├── PayloadTooLarge           request body / image bytes over the byte cap
├── NotFound                  an index is missing
│   ├── UnknownEngine         no engine under the requested id
│   └── UnknownItem           no indexed item with the requested id
├── Forbidden                 bad token or disallowed origin
├── EmbeddingFailed           the model raised while embedding
├── EmbedderMismatch          the index was written by another embedder/version/dim
├── Conflict                  the request clashes with work under way (a running sync)
├── BackendUnavailable        OpenSearch unreachable or erroring
├── BackendTimeout            OpenSearch too slow
└── ConfigError               an engine config or setting is invalid
"""

from __future__ import annotations


class ImgSearchError(Exception):
    """Base class; ``message`` is safe to show to clients."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(ImgSearchError):
    """The client sent something we cannot use."""


class MissingFields(InvalidRequest):
    """Required request fields are absent."""

    def __init__(self, fields: list[str]) -> None:
        quoted = ", ".join(f'"{f}"' for f in fields)
        super().__init__(f"Following fields are missing: [{quoted}]")
        self.fields = fields


class UnknownField(InvalidRequest):
    """A filter, facet or sort names a field the engine does not have."""


class FeatureDisabled(InvalidRequest):
    """The engine has the requested feature switched off."""


class ImageError(InvalidRequest):
    """The image itself is unusable."""


class ImageDecodeError(ImageError):
    """Not an image, truncated beyond repair, or an unsupported format."""


class ImageTooLarge(ImageError):
    """More pixels than the configured cap (decompression-bomb guard)."""


class ImageFetchError(ImageError):
    """An image URL or path could not be read."""


class PayloadTooLarge(ImgSearchError):
    """Request body or image bytes over the byte cap."""


class NotFound(ImgSearchError):
    """Something the request names does not exist."""


class UnknownEngine(NotFound):
    """No engine is served under the requested id."""


class UnknownItem(NotFound):
    """No indexed item has the requested id."""


class Forbidden(ImgSearchError):
    """Bad token or disallowed origin."""


class EmbeddingFailed(ImgSearchError):
    """The model raised while embedding."""


class EmbedderMismatch(ImgSearchError):
    """The index's vector field was written by a different embedder, version or dimension."""


class Conflict(ImgSearchError):
    """The request clashes with work already under way, e.g. a sync that is running."""


class BackendUnavailable(ImgSearchError):
    """OpenSearch is unreachable or answered with a server error."""


class BackendTimeout(ImgSearchError):
    """OpenSearch did not answer in time."""


class ConfigError(ImgSearchError):
    """An engine config or setting is invalid."""
