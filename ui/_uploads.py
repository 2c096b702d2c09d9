"""Files dropped into the browser: safe names, a size limit, never overwriting other files."""
from __future__ import annotations

import hashlib
import re
import shutil
import unicodedata
from pathlib import Path

from ingest import SUPPORTED as ACCEPTED  # whatever `ragqa ingest` reads, uploads accept


def safe_name(name: str) -> str:
    """A plain file name: no folders, no traversal, no hidden files, only portable characters."""
    name = unicodedata.normalize("NFKC", Path(name.replace("\\", "/")).name)
    stem, suffix = Path(name).stem, Path(name).suffix.lower()
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:120] or "upload"
    suffix = re.sub(r"[^a-z0-9.]", "", suffix)
    return stem + suffix


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_uploads(files: list[str], folder: Path, max_mb: float) -> tuple[list[Path], list[str]]:
    """Copy uploads into ``folder`` under safe names; returns (saved paths, one-line rejections).

    A name already taken by different content gets a ``-2``, ``-3``... suffix instead of
    replacing it; the same content uploaded again reuses the existing file.
    """
    folder.mkdir(parents=True, exist_ok=True)
    saved, rejected = [], []
    for src in map(Path, files or []):
        name = safe_name(src.name)
        if not name.endswith(ACCEPTED):
            rejected.append(f"{src.name}: unsupported file type — upload PDF, Markdown, HTML or text files")
            continue
        size_mb = src.stat().st_size / 1e6
        if size_mb > max_mb:
            rejected.append(f"{src.name}: {size_mb:.1f} MB is over the {max_mb:g} MB upload limit — "
                            "ingest it with `ragqa ingest FILE` or raise ui.max_upload_mb")
            continue
        saved.append(_place(src, folder, name))
    return saved, rejected


def _place(src: Path, folder: Path, name: str) -> Path:
    target, n = folder / name, 1
    while target.exists():
        if _digest(target) == _digest(src):
            return target
        n += 1
        target = folder / f"{Path(name).stem}-{n}{Path(name).suffix}"
    shutil.copyfile(src, target)
    return target
