"""Bracket-syntax parameters (``a[b][]=c``) and the same parameters as JSON → one tree.

Shared by the dialects that use PHP/Rails-style query strings. Rules:

- A key is ``name`` followed by ``[segment]`` groups; ``[]`` (append) only at the end.
  Anything else (``a[b``, ``a]b``, ``a[][b]``, ``[x]``) is an ``InvalidRequest``.
- Repeating a leaf collects values; ``scalar`` refuses repeated *different* values.
- A group whose keys are all integers is a list ordered by index (``as_list``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, cast

from imgsearch.errors import InvalidRequest

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")
_INDEX = re.compile(r"[0-9]{1,9}")
_ESCAPED_BRACKET = re.compile(r"%5[bd]", re.IGNORECASE)

# A parsed parameter tree: inner dicts, leaves are the list of values given.
Tree = dict[str, "Node"]
Node = Tree | list[str]
Path = tuple[str | None, ...]  # None: "[]", append


# Parameter names come from a small vocabulary: each is split once (bounded; errors are not kept).
@lru_cache(maxsize=4096)
def _split_key(key: str) -> Path:
    if _ESCAPED_BRACKET.search(key):
        raise InvalidRequest(f"Malformed parameter name {key!r}: brackets encoded twice")
    match = _KEY.match(key)
    if match is None:
        raise InvalidRequest(f"Malformed parameter name {key!r}")
    segments = _SEGMENT.findall(match.group(2))
    path: list[str | None] = [match.group(1)]
    for i, segment in enumerate(segments):
        if segment == "":
            if i != len(segments) - 1:
                raise InvalidRequest(f"Malformed parameter name {key!r}: '[]' must come last")
            path.append(None)
        else:
            path.append(segment)
    return tuple(path)


def _json_pairs(value: Any, path: tuple[str, ...]) -> Iterable[tuple[Path, str]]:
    if value is None:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _json_pairs(item, (*path, str(key)))
    elif isinstance(value, list):
        if all(not isinstance(item, dict | list) for item in value):
            for item in value:
                if item is not None:
                    yield (*path, None), _json_scalar(item, path)
        else:
            for i, item in enumerate(value):
                yield from _json_pairs(item, (*path, str(i)))
    else:
        yield path, _json_scalar(value, path)


def _json_scalar(value: Any, path: tuple[str, ...]) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise InvalidRequest(f"Invalid value for {_name(path)}")


def _name(path: Sequence[str | None]) -> str:
    head, *rest = path or ("",)
    return str(head) + "".join(f"[{'' if part is None else part}]" for part in rest)


def _insert(tree: Tree, path: Path, value: str) -> None:
    node: Tree = tree
    # "[]" (None) can only come last (``_split_key``, ``_json_pairs``).
    named = cast(tuple[str, ...], path if path[-1] is not None else path[:-1])
    for depth in range(len(named) - 1):
        child = node.setdefault(named[depth], {})
        if isinstance(child, list):
            raise InvalidRequest(f"Conflicting values for {_name(named[: depth + 1])}")
        node = child
    leaf = node.setdefault(named[-1], [])
    if isinstance(leaf, dict):
        raise InvalidRequest(f"Conflicting values for {_name(path)}")
    leaf.append(value)


def build_tree(pairs: Iterable[tuple[str, str]], body: Mapping[str, Any] | None = None) -> Tree:
    """Fold query pairs and an optional JSON body into one parameter tree."""
    tree: Tree = {}
    for key, value in pairs:
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidRequest("Invalid query parameters")
        if key:
            _insert(tree, _split_key(key), value)
    if body is not None:
        if not isinstance(body, Mapping):
            raise InvalidRequest("The request body must be a JSON object")
        for path, value in _json_pairs(dict(body), ()):
            if path:
                _insert(tree, path, value)
    return tree


def is_index(key: str) -> bool:
    return _INDEX.fullmatch(key) is not None


def as_list(node: Tree, name: str) -> list[Node]:
    """A group indexed 0..n (``facets[0]``, ``facets[1]``), as a list ordered by index."""
    indexes: list[tuple[int, Node]] = []
    for key, child in node.items():
        if not is_index(key):
            raise InvalidRequest(f"Invalid index {key!r} in {name}: expected an integer")
        indexes.append((int(key), child))
    return [child for _, child in sorted(indexes, key=lambda pair: pair[0])]


def scalar(tree: Tree, name: str) -> str | None:
    node = tree.get(name)
    if node is None:
        return None
    if isinstance(node, dict):
        raise InvalidRequest(f"Invalid {name}")
    if len(node) > 1 and len(set(node)) > 1:
        raise InvalidRequest(f"Parameter {name!r} given more than once with different values")
    return node[0] if node else None


def leaf_scalar(node: Node, name: str) -> str:
    if isinstance(node, dict) or not node or (len(node) > 1 and len(set(node)) > 1):
        raise InvalidRequest(f"Invalid {name}")
    return node[0]
