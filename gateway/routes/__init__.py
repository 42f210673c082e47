"""HTTP routes; each module is thin glue over dialects and the search service."""
