"""API dialects: one folder each, ``gateway/dialects/<name>/``.

A dialect parses its API's parameters into the neutral model (``gateway.search.model``),
calls the neutral service (``gateway.service``) and formats the neutral result in its API's
shape. It never builds OpenSearch DSL or talks to OpenSearch. Its ``routes`` module exports
a ``Dialect``, which ``gateway/app.py`` mounts; see ``docs/dialects.md``.
"""
