"""The HTTP API (docs/http.md): an aiohttp process the daemon owns, a client of the daemon's own socket."""

__all__: list[str] = []
