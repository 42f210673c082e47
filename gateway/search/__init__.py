"""Pure search core: neutral request/result model, OpenSearch DSL building, response reading.

Nothing here talks to OpenSearch or imports ``opensearchpy``/``torch``: dict in, dict out.
"""
