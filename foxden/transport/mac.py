"""Sealing Thespian frames: an HMAC-SHA256 tag in front of every payload, checked before it is read."""
from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
import stat

__all__ = ["KEY_BYTES", "LENGTH_TAG_BYTES", "OVERHEAD", "TAG_BYTES", "BadTag", "KeyFileError", "length_ok",
           "new_key", "read_key_file", "seal", "unseal"]

KEY_BYTES = 32  # a fresh key's size, and the least a key file must hold
TAG_BYTES = hashlib.sha256().digest_size  # HMAC-SHA256(key, payload)
# A frame opens with a tag of its own length, so a receiver can refuse a
# stranger's frame after these few bytes instead of buffering the body it
# announces (Thespian frames are b"<length>>" + the sealed payload).
LENGTH_TAG_BYTES = 16
OVERHEAD = LENGTH_TAG_BYTES + TAG_BYTES


class BadTag(ValueError):
    """A frame whose tag is missing or wrong: it was not sealed with this instance's key."""


class KeyFileError(ValueError):
    """[daemon] key_file cannot be used; the message names the file and the fix."""


def new_key() -> bytes:
    """A random key for one daemon instance (kept in memory, inherited by forked processes)."""
    return secrets.token_bytes(KEY_BYTES)


@functools.lru_cache(maxsize=4096)  # most frames are one of a few sizes (an ACK, a heartbeat)
def _length_tag(key: bytes, size: int) -> bytes:
    return hmac.digest(key, b"foxden frame length %d" % size, "sha256")[:LENGTH_TAG_BYTES]


def seal(key: bytes, payload: bytes) -> bytes:
    """length tag + tag + payload: HMAC-SHA256 of the frame's length (truncated) and of the payload."""
    return _length_tag(key, OVERHEAD + len(payload)) + hmac.digest(key, payload, "sha256") + payload


def length_ok(key: bytes, size: int, head: bytes) -> bool:
    """Whether a frame announced as `size` bytes and starting with `head` was sealed with `key`.

    `head` needs only LENGTH_TAG_BYTES (or all of a shorter frame, which is
    refused: no sealed frame is that short)."""
    return size >= OVERHEAD and len(head) >= LENGTH_TAG_BYTES and hmac.compare_digest(
        head[:LENGTH_TAG_BYTES], _length_tag(key, size))


def unseal(key: bytes, frame: bytes) -> bytes:
    """The payload of a sealed frame; BadTag unless both tags are right (compared in constant time)."""
    frame = bytes(frame)
    if not length_ok(key, len(frame), frame):
        raise BadTag(f"{len(frame)}-byte frame: length tag does not match this instance's key")
    payload = frame[OVERHEAD:]
    if not hmac.compare_digest(frame[LENGTH_TAG_BYTES:OVERHEAD], hmac.digest(key, payload, "sha256")):
        raise BadTag("frame tag does not match this instance's key")
    return payload


def read_key_file(path: str | os.PathLike) -> bytes:
    """The key in `path`: its bytes without surrounding whitespace, at least KEY_BYTES of them.

    Refused unless it is a regular file (not a symlink), owned by the user
    running foxden, and neither readable nor writable by group or others."""
    name = f"[daemon] key_file {os.fspath(path)}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise KeyFileError(f"{name}: cannot open: {exc.strerror or exc} (a symlink is refused too)") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"{name}: not a regular file")
        if st.st_uid != os.geteuid():
            raise KeyFileError(f"{name}: owned by uid {st.st_uid}, not by the daemon's user (uid {os.geteuid()}); "
                               f"chown it to that user")
        if st.st_mode & 0o077:
            raise KeyFileError(f"{name}: mode {stat.S_IMODE(st.st_mode):04o} lets group or others read or write "
                               f"it; chmod 600 it (and make a new key: this one may have been read)")
        data = os.read(fd, 4096).strip()
    finally:
        os.close(fd)
    if len(data) < KEY_BYTES:
        raise KeyFileError(f"{name}: holds {len(data)} bytes, at least {KEY_BYTES} are needed "
                           f"(make one with: openssl rand -hex 32 > FILE; chmod 600 FILE)")
    return data
