"""Shared bits of the benchmarks: corpus location, JSON output, a printed table."""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVALCORPUS = ROOT.parent / "shared" / "evalcorpus"
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))


def dev_set_args(ap, sets: str = "aragog,qasper"):
    """The options of a benchmark over the dev question sets: the index holding the whole dev corpus, which
    sets, at most how many questions each, and a config file."""
    ap.add_argument("--index", default="dev")
    ap.add_argument("--sets", default=sets)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--config", type=Path)
    return ap


def corpus_files(corpus: Path) -> list[Path]:
    """All PDFs and blog posts of a corpus folder (what the dev-corpus benchmark ingests)."""
    exts = {".pdf", ".md", ".html", ".htm"}
    # the corpus's own README describes the question sets: not a document a user would index
    return sorted(p for p in corpus.rglob("*") if p.suffix.lower() in exts and p.is_file()
                  and p != corpus / "README.md")


def require_corpus(corpus: Path) -> None:
    if not corpus.is_dir():
        sys.exit(f"{corpus}: corpus folder absent — pass --corpus DIR (default is ../shared/evalcorpus)")


def write_result(name: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"benchmark": name, "when": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(), **data}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=1))
    print(f"\nwrote {path}")
    return path


def machine() -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "threads": os.environ.get("RAGQA_THREADS", "all"), "load1": os.getloadavg()[0]}


def table(rows: list[dict]) -> None:
    if not rows:
        return
    cols = list(dict.fromkeys(c for r in rows for c in r))
    widths = [max(len(str(c)), *(len(_fmt(r.get(c))) for r in rows)) for c in cols]
    print("  ".join(str(c).ljust(w) for c, w in zip(cols, widths)))
    for r in rows:
        print("  ".join(_fmt(r.get(c)).ljust(w) for c, w in zip(cols, widths)))


def _fmt(v) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)
