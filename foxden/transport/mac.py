"""Sealing Thespian frames: an HMAC-SHA256 tag in front of every payload, checked before it is read."""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat

__all__ = ["KEY_BYTES", "TAG_BYTES", "BadTag", "KeyFileError", "new_key", "read_key_file", "seal", "unseal"]

KEY_BYTES = 32  # a fresh key's size, and the least a key file must hold
TAG_BYTES = hashlib.sha256().digest_size


class BadTag(ValueError):
    """A frame whose tag is missing or wrong: it was not sealed with this instance's key."""


class KeyFileError(ValueError):
    """[daemon] key_file cannot be used; the message names the file and the fix."""


def new_key() -> bytes:
    """A random key for one daemon instance (kept in memory, inherited by forked processes)."""
    return secrets.token_bytes(KEY_BYTES)


def seal(key: bytes, payload: bytes) -> bytes:
    """tag + payload, the tag being HMAC-SHA256(key, payload)."""
    return hmac.digest(key, payload, "sha256") + payload


def unseal(key: bytes, frame: bytes) -> bytes:
    """The payload of a sealed frame; BadTag unless its tag is right (compared in constant time)."""
    frame = bytes(frame)
    if len(frame) < TAG_BYTES:
        raise BadTag(f"frame of {len(frame)} bytes is shorter than a tag")
    payload = frame[TAG_BYTES:]
    if not hmac.compare_digest(frame[:TAG_BYTES], hmac.digest(key, payload, "sha256")):
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
