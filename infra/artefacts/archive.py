"""Archives whose bytes depend only on their contents and SOURCE_DATE_EPOCH.

What normally leaks into an archive, and what is done about it:
- entry order (directory listing order): sorted by name;
- timestamps: every entry gets SOURCE_DATE_EPOCH; gzip's own header gets mtime 0 and no name;
- owner, group and mode: uid/gid 0, no names, 0644 (0755 for files that were executable);
- compression: zlib at a fixed level. zlib's output is stable for one zlib version; a different
  zlib (another OS) may compress differently, which the manifest's `zlib` field records.
"""

from __future__ import annotations

import gzip
import io
import stat
import tarfile
import time
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ZIP_EPOCH_FLOOR: Final = 315532800  # 1980-01-01: the earliest time a zip entry can hold
COMPRESS_LEVEL: Final = 9
ZLIB_VERSION: Final = zlib.ZLIB_RUNTIME_VERSION


@dataclass(frozen=True)
class Entry:
    name: str  # path inside the archive, "/"-separated
    data: bytes
    executable: bool = False


def entries_from_dir(root: Path, prefix: str = "") -> list[Entry]:
    """Every regular file under `root`, named relative to it (symlinks and empty dirs are not kept)."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            name = prefix + path.relative_to(root).as_posix()
            found.append(Entry(name, path.read_bytes(), bool(path.stat().st_mode & stat.S_IXUSR)))
    return found


def _unique_sorted(entries: Iterable[Entry]) -> list[Entry]:
    by_name: dict[str, Entry] = {}
    for entry in entries:
        previous = by_name.setdefault(entry.name, entry)
        if previous.data != entry.data:
            raise ValueError(f"two different files would be stored as {entry.name}")
    return [by_name[name] for name in sorted(by_name)]


def write_tar_gz(path: Path, entries: Iterable[Entry], epoch: int) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for entry in _unique_sorted(entries):
            info = tarfile.TarInfo(entry.name)
            info.size = len(entry.data)
            info.mtime = epoch
            info.mode = 0o755 if entry.executable else 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(entry.data))
    with path.open("wb") as out, gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())


def write_zip(path: Path, entries: Iterable[Entry], epoch: int) -> None:
    stamp = time.gmtime(max(epoch, ZIP_EPOCH_FLOOR))[:6]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL) as archive:
        for entry in _unique_sorted(entries):
            info = zipfile.ZipInfo(entry.name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so the mode bits below are honoured
            info.external_attr = ((0o755 if entry.executable else 0o644) | stat.S_IFREG) << 16
            archive.writestr(info, entry.data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL)
