"""Outputs appear under their final name only when whole.

Everything is written under a hidden temporary sibling (same folder, so the
final ``rename`` is atomic on one filesystem) and renamed at the end.  If the
run fails or is interrupted, the temporary is removed, so nothing that looks
complete is ever left behind.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from ..errors import OutputError


def _temp_sibling(final: Path) -> Path:
    return final.with_name(f".{final.name}.partial-{os.getpid()}")


def check_writable(final: Path, overwrite: bool) -> None:
    """Fail now, not after the work, when ``final`` could not be written; creates nothing."""
    final = Path(final)
    if final.exists() and not overwrite:
        raise OutputError(f"{final}: already exists (pass --force to replace it)")
    parent = final.parent if str(final.parent) else Path(".")
    for p in (parent, *parent.parents):
        if p.exists() and not p.is_dir():
            raise OutputError(f"{p}: is a file, cannot hold the output folder")
    existing = next(p for p in (parent, *parent.parents, Path(".")) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{existing}: not writable")


def make_parents(final: Path) -> list[Path]:
    """Create the missing folders above ``final``; return those created, outermost first."""
    parent = Path(final).parent
    missing = [p for p in (parent, *parent.parents) if not p.exists()][::-1]
    try:
        for p in missing:
            p.mkdir()
    except OSError as e:
        raise OutputError(f"{parent}: cannot create output folder ({e.strerror})") from None
    return missing


def remove_empty(folders: list[Path]) -> None:
    """Remove folders ``make_parents`` created, innermost first, while they are empty."""
    for p in reversed(folders):
        try:
            p.rmdir()
        except OSError:
            return


def describe_os_error(e: OSError, where: Path) -> OutputError:
    if e.errno == errno.ENOSPC:
        return OutputError(f"{where}: disk full while writing output (nothing was kept)")
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputError(f"{where}: not writable ({e.strerror})")
    return OutputError(f"{where}: write failed ({e.strerror})")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def _removed_on_failure(tmp: Path, final: Path) -> Iterator[None]:
    """Remove ``tmp`` (and the folders made for it) if the block fails; OS errors become one-line
    output errors about ``final``."""
    created = make_parents(final)
    try:
        yield
    except OSError as e:
        _remove(tmp)
        remove_empty(created)
        raise describe_os_error(e, final) from None
    except BaseException:
        _remove(tmp)
        remove_empty(created)
        raise


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder that becomes ``final`` when the block succeeds."""
    final = Path(final)
    check_writable(final, overwrite)
    tmp = _temp_sibling(final)
    _remove(tmp)
    with _removed_on_failure(tmp, final):
        tmp.mkdir()
        yield tmp
        if final.exists():
            _remove(final)
        os.rename(tmp, final)


@contextlib.contextmanager
def atomic_file(final: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path that becomes ``final`` when the block succeeds."""
    final = Path(final)
    check_writable(final, overwrite)
    tmp = _temp_sibling(final)
    with _removed_on_failure(tmp, final):
        yield tmp
        os.replace(tmp, final)


def output_digest(out: Path) -> str:
    """sha256 over every file of an output folder (names and bytes), for reproducibility checks."""
    h = hashlib.sha256()
    for f in sorted(p for p in out.rglob("*") if p.is_file()):
        h.update(f.relative_to(out).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()
