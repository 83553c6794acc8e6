"""Filesystem safety: a state dir only its owner can change, nothing under it followed through a symlink."""
from __future__ import annotations

import errno
import os
import shutil
import stat

__all__ = ["UnsafePath", "check_private_dir", "ensure_state_dir", "ensure_private_subdir", "open_nofollow",
           "safe_rmtree", "check_socket_path"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(Exception):
    """A path foxden refuses to use: the message names it, says why and what to do."""


def _owner(uid: int) -> str:
    try:
        import pwd

        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except (KeyError, ImportError):
        return f"uid {uid}"


def _trusted_uid(uid: int) -> bool:
    return uid in (0, os.geteuid())


def _dir_problem(path: str, st: os.stat_result, *, sticky_ok: bool) -> str | None:
    """Why a directory at path (its lstat) is not one only we (or root) can change, or None."""
    if stat.S_ISLNK(st.st_mode):
        return f"{path} is a symbolic link; foxden follows none under its state dir: replace it with a directory"
    if not stat.S_ISDIR(st.st_mode):
        return f"{path} is not a directory"
    if not _trusted_uid(st.st_uid):
        return (f"{path} is owned by {_owner(st.st_uid)}, not by {_owner(os.geteuid())} who runs foxden: "
                f"another user could replace what is in it; chown {os.geteuid()} {path}, or choose another directory")
    writable = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if writable and not (sticky_ok and st.st_mode & stat.S_ISVTX):
        return (f"{path} is writable by its group or by others (mode {stat.S_IMODE(st.st_mode):04o}): another "
                f"user could replace what is in it; chmod go-w {path} (foxden creates it 0700)")
    return None


def check_private_dir(path: os.PathLike | str, *, ancestors: bool = True) -> None:
    """Raise UnsafePath unless path is a real directory owned by us (or root) that no one else can write.

    With `ancestors`, every directory above it must be owned by us or root
    and not writable by others, except a sticky one like /tmp (others there
    cannot rename or remove what is ours)."""
    path = os.path.abspath(path)
    problem = _dir_problem(path, os.lstat(path), sticky_ok=False)
    # Above it, links are resolved: /var/run -> /run is root's to change, not a hole.
    above = os.path.realpath(os.path.dirname(path))
    while problem is None and ancestors:
        problem = _dir_problem(above, os.lstat(above), sticky_ok=True)
        if above == os.path.dirname(above):
            break
        above = os.path.dirname(above)
    if problem is not None:
        raise UnsafePath(problem)


def ensure_state_dir(path: os.PathLike | str) -> None:
    """Create the state dir 0700 if it is missing, then check it (check_private_dir)."""
    path = os.fspath(path)
    try:
        os.makedirs(path, mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise UnsafePath(f"cannot create the state dir {path}: {exc.strerror or exc}") from None
    check_private_dir(path)


def _open_under(root_fd: int, name: str) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=root_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafePath(f"{name} under the state dir is a symbolic link or not a directory; remove it") from None
        raise


def ensure_private_subdir(state_dir: os.PathLike | str, name: str) -> str:
    """state_dir/name as a real directory (made 0700 if missing), never a symlink; returns its path."""
    fd = os.open(os.fspath(state_dir), _DIR_FLAGS)
    try:
        try:
            os.mkdir(name, 0o700, dir_fd=fd)
        except FileExistsError:
            pass
        try:
            os.close(_open_under(fd, name))
        except UnsafePath:
            raise UnsafePath(f"{os.path.join(os.fspath(state_dir), name)} is a symbolic link or not a directory; "
                             "remove it (foxden makes it afresh)") from None
    finally:
        os.close(fd)
    return os.path.join(os.fspath(state_dir), name)


def open_nofollow(path: os.PathLike | str, flags: int, mode: int = 0o600) -> int:
    """os.open with O_NOFOLLOW and O_CLOEXEC; a symlink is refused with an UnsafePath naming it."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePath(f"{path} is a symbolic link; foxden does not follow it: remove it") from None
        raise


def safe_rmtree(state_dir: os.PathLike | str, relative: str) -> bool:
    """Remove state_dir/relative without following a symlink anywhere below state_dir.

    Each directory on the way is opened with O_NOFOLLOW relative to its
    parent's descriptor, and shutil.rmtree works from the last one's
    descriptor (its fd-based walk never follows a link). A symlink on the
    way is left alone, and so is what it points to: returns False then (and
    when there was nothing to remove), True when something was removed."""
    parts = [p for p in relative.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise ValueError(f"not a path under the state dir: {relative!r}")
    try:
        fd = os.open(os.fspath(state_dir), _DIR_FLAGS)
    except OSError:
        return False
    try:
        for part in parts[:-1]:
            try:
                next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError:
                return False  # missing, or a symlink: nothing of ours to remove there
            os.close(fd)
            fd = next_fd
        try:
            st = os.lstat(parts[-1], dir_fd=fd)
        except FileNotFoundError:
            return False
        if not stat.S_ISDIR(st.st_mode):
            return False  # a symlink (or a file) where a directory of ours belongs: not followed
        shutil.rmtree(parts[-1], ignore_errors=True, dir_fd=fd)
        return True
    finally:
        os.close(fd)


def check_socket_path(path: os.PathLike | str) -> None:
    """Raise UnsafePath unless the socket's directory is private (check_private_dir) and whatever
    is at path already is a socket of ours (which the gateway may then replace if nobody answers)."""
    path = os.fspath(path)
    check_private_dir(os.path.dirname(os.path.abspath(path)))
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a socket"
        raise UnsafePath(f"[daemon] socket {path} is {kind}; foxden replaces only a stale socket of its own: "
                         "remove it or choose another path")
    if not _trusted_uid(st.st_uid):
        raise UnsafePath(f"[daemon] socket {path} belongs to {_owner(st.st_uid)}: remove it or choose another path")
