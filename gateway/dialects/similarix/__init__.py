"""The Similarix dialect: text and image search over synced folders and buckets (``/api/...``)."""
