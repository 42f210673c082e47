"""The collection API (museum and archive teams): collections, CSV content, keys, search."""
