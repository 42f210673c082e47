"""The gateway's own routes (operations, demo page): not an API dialect."""
