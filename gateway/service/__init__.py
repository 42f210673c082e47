"""The neutral service: the one place dialects go for catalog operations.

``catalog.CatalogService`` is the I/O side (query images, the model, OpenSearch); the pure
translation it drives lives in ``gateway.search``. Dialects import from here and from
``gateway.search.model``, never from the DSL, the result reader or the OpenSearch client.
"""

from gateway.service.catalog import CatalogService
from gateway.service.timings import Timings

__all__ = ["CatalogService", "Timings"]
