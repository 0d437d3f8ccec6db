"""What kind of file an input or an output is: the same file under two names, or a stream that
can be read only once."""

from __future__ import annotations

import os
import stat
from typing import IO


def _stat(path: str) -> os.stat_result | None:
    """The file a path names, following symlinks ("-" is stdin); None when there is none yet."""
    try:
        return os.fstat(0) if path == "-" else os.stat(path)
    except OSError:  # no such file yet, a dangling link, stdin closed
        return None


def same_file(a: str, b: str) -> bool:
    """Whether two paths name one file (by device and inode: through any link, relative path or
    `-` for stdin). A path with no file behind it is the same as nothing."""
    first, second = _stat(a), _stat(b)
    return (first is not None and second is not None
            and (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino))


def is_rereadable(path: str) -> bool:
    """Whether the input can be read twice from its start: a regular file, not stdin, a pipe, a
    FIFO or a `<(...)` process substitution (reading those again gets what is left, or waits)."""
    if path == "-":
        return False
    found = _stat(path)
    return found is not None and stat.S_ISREG(found.st_mode)


def is_regular(file: IO[bytes]) -> bool:
    """Whether an open file is a regular file (stdin redirected from a file is one)."""
    try:
        return stat.S_ISREG(os.fstat(file.fileno()).st_mode)
    except (OSError, ValueError):  # no descriptor (an in-memory stream), or closed
        return False
