"""The ``_image_search`` request body: the query image and any parameters given as JSON.

Three transports for the image: JSON ``{"image": "<base64>"}`` or ``{"image_url": …}``,
or multipart with an ``image`` file (or base64 text) field. Other body fields are search
parameters, merged with the query string's by ``params.parse_params``.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import Request
from starlette.datastructures import UploadFile

from gateway.search.model import ImageQuery, ImageUrlQuery
from imgsearch.errors import ImgSearchError, InvalidRequest, MissingFields
from imgsearch.images import image_bytes_from_base64


@dataclass
class ImageInput:
    """The query image as the client sent it; decoded only after the parameters pass."""

    data: bytes | None = None
    base64_text: str | None = None
    url: str | None = None

    def query(self) -> ImageQuery | ImageUrlQuery:
        """The neutral query (base64 decoded here: a bad one is a 400 before any I/O)."""
        if self.data is not None:
            return ImageQuery(self.data)
        if self.base64_text:
            return ImageQuery(image_bytes_from_base64(self.base64_text, "image"))
        if self.url:
            return ImageUrlQuery(self.url)
        raise MissingFields(["image"])


async def read_body(request: Request) -> tuple[dict[str, Any], ImageInput]:
    """(parameters given in the body, the image)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        return await _read_multipart(request)
    body = await read_json_params(request)
    image_field = body.pop("image", None)
    url_field = body.pop("image_url", None)
    if image_field is not None and not isinstance(image_field, str):
        raise InvalidRequest("Field image must be a base64 string")
    if url_field is not None and not isinstance(url_field, str):
        raise InvalidRequest("Field image_url must be a string")
    return body, ImageInput(base64_text=image_field, url=url_field)


async def read_json_params(request: Request) -> dict[str, Any]:
    """Search parameters given as a JSON object body (an empty body gives none).

    orjson: strict RFC 8259 (no ``NaN``), and a third of ``json``'s time on a photo's body; a
    UTF-8 byte order mark is skipped, as ``json.loads`` did.
    """
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw.removeprefix(codecs.BOM_UTF8))
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest("Request body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object")
    return body


async def _read_multipart(request: Request) -> tuple[dict[str, Any], ImageInput]:
    params: dict[str, Any] = {}
    image = ImageInput()
    try:
        async with request.form() as form:
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    if key == "image":
                        image.data = await value.read()
                elif key == "image":
                    image.base64_text = value
                elif key == "image_url":
                    image.url = value
                else:
                    params.setdefault(key, []).append(value)
    except ImgSearchError:
        raise
    except Exception as exc:  # python-multipart raises several unrelated types
        raise InvalidRequest("Invalid multipart body") from exc
    return {k: v[0] if len(v) == 1 else v for k, v in params.items()}, image
