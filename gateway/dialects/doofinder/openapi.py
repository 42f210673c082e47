"""OpenAPI descriptions of the Doofinder routes' parameters, bodies and errors.

The routes read their parameters from the raw query string (bracket syntax), so FastAPI
cannot infer them; these tables document them in ``/openapi.json``.
"""

from __future__ import annotations

from typing import Any

_ERROR_SCHEMA = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"error": {"type": "string"}},
                "required": ["error"],
            }
        }
    }
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid parameters or image", **_ERROR_SCHEMA},
    403: {"description": "Bad token or origin not allowed (`forbidden`)", **_ERROR_SCHEMA},
    404: {"description": "`Mapping not found` or item not found", **_ERROR_SCHEMA},
    413: {"description": "Request body or image too large", **_ERROR_SCHEMA},
    424: {"description": "Embedding the image failed; retry", **_ERROR_SCHEMA},
    503: {"description": "Search backend unavailable", **_ERROR_SCHEMA},
    504: {"description": "Search backend timed out", **_ERROR_SCHEMA},
}


def bracket_param(name: str, description: str, schema_type: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": {"type": schema_type}}  # fmt: skip


HASHID_PARAMETER = {"name": "hashid", "in": "path", "required": True,
                    "description": "The search engine.", "schema": {"type": "string"}}  # fmt: skip

SEARCH_PARAMETERS = [
    HASHID_PARAMETER,
    bracket_param("filter", "Filters, e.g. `filter[color][]=red&filter[price][gte]=10`."),
    bracket_param("exclude", "Negative filters, same syntax as `filter`."),
    bracket_param("filter_execution", "`and` (default) or `or` between filtered fields."),
    bracket_param("facets", "`facets[0][field]=brand&facets[0][size]=10&facets[0][type]=terms`."),
    bracket_param("sort", "`sort[0][price]=asc`; similarity breaks ties."),
    bracket_param("rpp", "Results per page, 1..100 (default 20).", "integer"),
    bracket_param("page", "1-based page; `page*rpp` must fit in the engine's pool.", "integer"),
    bracket_param("session_id", "Session id, at most 32 characters."),
    bracket_param("user_id", "User id, at most 36 characters."),
    bracket_param("stats", "Count this search in stats (accepted, not recorded).", "boolean"),
    bracket_param("excluded_results", "Accepted for compatibility.", "boolean"),
]

TEXT_PARAMETERS = [
    bracket_param("query", "The words (at most 1,000 characters); leave out to browse."),
    *SEARCH_PARAMETERS,
]

SIMILAR_PARAMETERS = [
    bracket_param("dfid", "The item: its dfid (`hashid@product@md5`) or its id."),
    bracket_param("exclude_self", "Leave the item itself out (default true).", "boolean"),
    *SEARCH_PARAMETERS,
]

IMAGE_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "image": {
                        "type": "string",
                        "format": "base64",
                        "description": "The image, base64-encoded.",
                    },
                    "image_url": {
                        "type": "string",
                        "format": "uri",
                        "description": "Alternatively, an http(s) image URL.",
                    },
                },
                "description": "Search parameters may also be given here as JSON.",
            }
        },
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "image": {"type": "string", "format": "binary"},
                    "image_url": {"type": "string", "format": "uri"},
                },
            }
        },
    },
}
