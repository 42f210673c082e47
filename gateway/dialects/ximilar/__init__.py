"""The Ximilar visual-search collection dialect (``/similarity/{service}/v2/<method>``)."""
