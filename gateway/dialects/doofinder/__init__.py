"""The Doofinder v6 image-search dialect (``/6/{hashid}/_image_search``)."""
