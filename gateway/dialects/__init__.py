"""API dialects: each parses its own parameters into the neutral model and formats results."""
