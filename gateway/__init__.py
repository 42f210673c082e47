"""The gateway: dialect parsing, the pure search core, and (elsewhere) the HTTP routes."""
