"""Message types: internal actor messages and the client wire protocol."""
