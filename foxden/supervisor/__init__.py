"""The supervisor actor and its restart policy (plain data, pure functions)."""
