"""Old name of foxden.transport's unpickler (kept for its callers)."""
from foxden.transport import install
from foxden.transport.unpickle import RefusedPickle, loads

__all__ = ["RefusedPickle", "install", "loads"]
