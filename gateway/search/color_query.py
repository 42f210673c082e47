"""Colour query parameters → the neutral ``ColorQuery``, and colours combined with a query.

Pure; shared by the dialects that search by colour (Flow's ``/image``, Doofinder's
``_image_search`` extension). The syntax, one parameter::

    color=#0a7e8c:0.7,#ffffff:0.3     two colours, 70 % and 30 %
    color=0a7e8c                      one colour ('#' optional: in a URL it must be %23)
    color=#f00,#fff                   no weights: equal shares; #rgb short forms allowed

One to five colours; weights are positive numbers, normalised to shares (``70,30`` works as
well as ``0.7,0.3``); either every colour has a weight or none has.

Combined with an image or item query, the colours re-rank the image's k-NN pool by
``(1 - w) * image similarity + w * colour similarity`` with the engine's
``gateway.color_weight`` ``w`` (``VectorRerank``); alone, they search the engine's colour
descriptor field directly.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace

from gateway.search.model import ColorQuery, MultiQuery, Query, SearchRequest, VectorRerank
from imgsearch.engine_config import EngineConfig
from imgsearch.errors import FeatureDisabled, InvalidRequest, MissingFields

MAX_COLORS = 5
MAX_LENGTH = 200
_HEX = re.compile(r"#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})")


def _hex(text: str, param: str) -> str:
    match = _HEX.fullmatch(text.strip())
    if match is None:
        raise InvalidRequest(f"Invalid {param}: {text.strip()!r} is not a hex colour (#rrggbb)")
    digits = match.group(1).lower()
    return "#" + (digits if len(digits) == 6 else "".join(c * 2 for c in digits))


def _weight(text: str, param: str) -> float:
    try:
        weight = float(text.strip())
    except ValueError:
        raise InvalidRequest(f"Invalid {param}: weight {text.strip()!r} is not a number") from None
    if not math.isfinite(weight) or weight <= 0:
        raise InvalidRequest(f"Invalid {param}: weight {text.strip()!r} must be positive")
    return weight


def parse_colors(text: str, param: str = "color") -> ColorQuery:
    """``"#0a7e8c:0.7,#ffffff:0.3"`` → ``ColorQuery`` with lowercase ``#rrggbb`` and shares
    summing to 1. ``InvalidRequest`` naming ``param`` for anything else."""
    if len(text) > MAX_LENGTH:
        raise InvalidRequest(f"Invalid {param}: at most {MAX_LENGTH} characters")
    entries = [entry.strip() for entry in text.split(",")]
    if not text.strip() or any(not entry for entry in entries):
        raise InvalidRequest(f"Invalid {param}: give 1 to {MAX_COLORS} hex colours, e.g. #0a7e8c")
    if len(entries) > MAX_COLORS:
        raise InvalidRequest(f"Invalid {param}: at most {MAX_COLORS} colours, not {len(entries)}")
    pairs = [entry.split(":", 1) for entry in entries]
    weighted = [len(pair) == 2 for pair in pairs]
    if any(weighted) and not all(weighted):
        raise InvalidRequest(f"Invalid {param}: give a weight to every colour or to none")
    hexes = [_hex(pair[0], param) for pair in pairs]
    weights = [_weight(pair[1], param) for pair in pairs] if all(weighted) else [1.0] * len(pairs)
    total = sum(weights)
    return ColorQuery(tuple((h, w / total) for h, w in zip(hexes, weights, strict=True)))


def with_colors(
    query: Query | None,
    colors: ColorQuery | None,
    request: SearchRequest,
    config: EngineConfig,
) -> tuple[Query, SearchRequest]:
    """The query and request to search: colours alone search the colour field; beside an
    image or item query they re-rank its pool (``gateway.color_weight``)."""
    if colors is None:
        if query is None:
            raise MissingFields(["image"])
        return query, request
    field = config.color_vector_field
    if field is None:
        raise FeatureDisabled("Colour search needs a color vector field; this engine has none")
    if query is None:
        return colors, replace(request, vector_field=field)
    if isinstance(query, MultiQuery):
        raise InvalidRequest("Colours combine with one query image, not several")
    rerank = VectorRerank(field, colors, config.gateway.color_weight)
    return query, replace(request, rerank=rerank)
