"""Writing files so that a reader never sees half of one, and a user's `-o PATH` is written where it points.

`atomic_replace` writes a temp file beside the target, fsyncs it and renames it over the target: a reader sees
the old file or the new one, and a failed write leaves no temp file. Every failure is one GcbenchError naming
the path and the system's reason ("No space left on device").

`write_output` is for a path the user named. Renaming over it is right only for a regular file or a new path;
a device, a FIFO or a symlink would be replaced by a regular file (`-o /dev/full` as root replaced the device).
So: a symlink is followed to its target (the link stays), a character device or a FIFO is written through in
place, `/dev/stdout`, `/dev/fd/N` and `/proc/self/fd/N` are written to gcbench's own descriptor (a shell's
`>> log` keeps appending), and a directory, block device or socket is refused.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

from gcbench.errors import GcbenchError


def os_reason(e: OSError) -> str:
    """The system's words for an OSError ("No space left on device"), also for pyarrow's, which carry the
    errno only in their message ("[Errno 28] Error writing bytes to file. Detail: [errno 28] ...")."""
    errno = e.errno
    if not errno:
        m = re.search(r"\[errno (\d+)\]", str(e), re.IGNORECASE)
        errno = int(m.group(1)) if m else None
    return os.strerror(errno) if errno else (str(e) or e.__class__.__name__)


class WriteError(GcbenchError, OSError):
    """A file could not be written: one line for the user (exit 2), still an OSError for code that catches one."""


def write_error(path: Path, e: OSError) -> WriteError:
    if isinstance(e, WriteError):
        return e
    return WriteError(f"{path}: cannot write: {os_reason(e)}")


def fsync_dir(folder: Path) -> None:
    """The rename itself reaches the disk (a crash right after it keeps the new name)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a directory; the rename is still atomic
    finally:
        os.close(fd)


def atomic_replace(path: Path, write: Callable[[Path], object], mode: int | None = None) -> None:
    """write(tmp) then rename over path: readers see the old file or the new one, never a part of one.

    mode: the permission bits of the new file (default: what the umask gives a new file)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        if mode is not None:
            os.chmod(tmp, mode)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise write_error(path, e) from None
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_replace(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_json(path: Path, doc: dict) -> None:
    atomic_write_bytes(path, (json.dumps(doc, indent=2, default=str) + "\n").encode())


_OWN_FD = re.compile(r"/dev/(stdout|stderr|stdin|fd/(\d+))|/proc/(self|thread-self|\d+)/fd/(\d+)")
_STD = {"stdin": 0, "stdout": 1, "stderr": 2}


def _own_fd(path: Path) -> int | None:
    """The descriptor of this process that path names (/dev/stdout, /dev/fd/N, /proc/self/fd/N, directly or
    through symlinks), or None."""
    p = os.path.abspath(path)
    for _ in range(40):  # the kernel's own limit on a chain of links
        m = _OWN_FD.fullmatch(p)
        if m and (m.group(3) in (None, "self", "thread-self", str(os.getpid()))):
            return _STD[m.group(1)] if m.group(1) in _STD else int(m.group(2) or m.group(4))
        if not os.path.islink(p):
            return None
        target = os.readlink(p)
        if target.startswith(("pipe:", "socket:", "anon_inode:")):
            return None  # another process's /proc magic link to a pipe or socket: the caller's stat sees it
        p = os.path.normpath(os.path.join(os.path.dirname(p), target))
    return None


def _write_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def is_stream(path: Path | None) -> bool:
    """path is written through in place (a character device, a FIFO, one of gcbench's own descriptors): no
    figure files go "next to" it."""
    if path is None:
        return False
    try:
        if _own_fd(path) is not None:
            return True
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)


def write_output(path: Path, data: bytes) -> str:
    """Write a file the user named (`-o PATH`); return how: "replaced", "created" or "written through"."""
    try:
        fd = _own_fd(path)
        if fd is not None:
            _write_fd(fd, data)
            return "written through"
        try:
            st = os.stat(path)  # follows symlinks
        except FileNotFoundError:
            st = None  # a new file (or a dangling symlink: its target is created)
        if st is not None and (stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
            with open(path, "wb") as f:  # a device or a FIFO: O_TRUNC does nothing to it
                f.write(data)
            return "written through"
        if st is not None and not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a block device" if stat.S_ISBLK(st.st_mode) \
                else "not a regular file, a character device or a FIFO"
            raise GcbenchError(f"{path}: is {kind}; give a file to write")
        target = Path(os.path.realpath(path))  # a symlink stays a link: its target is replaced
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_error(path, e) from None
    atomic_replace(target, lambda tmp: tmp.write_bytes(data), None if st is None else stat.S_IMODE(st.st_mode))
    return "created" if st is None else "replaced"
