"""foxden's actor transport: Thespian frames sealed with a per-instance key, then a strict unpickler."""
from foxden.transport.mac import BadTag, KeyFileError, new_key, read_key_file
from foxden.transport.patch import FrameRefused, install
from foxden.transport.refusals import Refusal, counts
from foxden.transport.unpickle import RefusedPickle, loads

__all__ = ["BadTag", "FrameRefused", "KeyFileError", "Refusal", "RefusedPickle", "counts", "install", "loads",
           "new_key", "read_key_file"]
