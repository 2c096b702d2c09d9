"""Peak memory of hostile input: a 1 MB flate bomb (1 GB inflated) and a 50 MB text file.

    RAGQA_THREADS=1 python bench/hostile.py [--real-embedder] [--inflated-mb 1024] [--text-mb 50]

Each case is ingested in its own process (clean peak RSS) next to a baseline process that
ingests one small Markdown file, so the figure is what the hostile file itself costs. The
default embedder is the test suite's word-overlap fake: the limits under test act before
embedding, and the fake keeps the 2-core machine free. Writes bench/results/hostile.json.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, table, write_result

sys.path.insert(0, str(ROOT / "tests"))


def build(folder: Path, inflated_mb: int, text_mb: int) -> dict[str, Path]:
    from fakes import make_flate_bomb_pdf

    folder.mkdir(parents=True, exist_ok=True)
    small = folder / "small.md"
    small.write_text("# Small\n\nA short note about retrieval so the baseline ingests something.\n")
    bomb = make_flate_bomb_pdf(folder / "bomb.pdf", inflated_mb=inflated_mb)
    text = folder / "large.txt"
    line = "The retriever scores each passage against the question and keeps the best ones. \n"
    with open(text, "w") as f:
        for _ in range(text_mb * 1_000_000 // len(line)):
            f.write(line)
    return {"baseline": small, "flate bomb": bomb, "large text": text}


def worker(path: str, home: str, real: bool) -> dict:
    import os
    import resource

    os.environ["RAGQA_HOME"] = home
    from ingest import ingest

    embedder = None
    if not real:
        from fakes import WordEmbedder

        embedder = WordEmbedder(max_tokens=256)
    t0 = time.perf_counter()
    report = ingest([path], index="bench", embedder=embedder, progress=False)
    return {"seconds": time.perf_counter() - t0, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "chunks": report.chunks_added, "lines": [str(p) for p in report.skipped + report.warnings]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real-embedder", action="store_true", help="embed with MiniLM instead of the fake")
    ap.add_argument("--inflated-mb", type=int, default=1024)
    ap.add_argument("--text-mb", type=int, default=50)
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.real_embedder)))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files = build(Path(tmp) / "in", args.inflated_mb, args.text_mb)
        for name, path in files.items():
            cmd = [sys.executable, __file__, "--worker", str(path), f"{tmp}/home-{len(rows)}"]
            out = subprocess.run(cmd + (["--real-embedder"] if args.real_embedder else []), check=True,
                                 capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            line = (r.pop("lines") or [""])[0].replace(str(path), path.name)
            rows.append({"case": name, "file_mb": round(path.stat().st_size / 1e6, 2), **r, "line": line})
    table(rows)
    write_result("hostile", {"embedder": "MiniLM" if args.real_embedder else "word-overlap fake",
                             "inflated_mb": args.inflated_mb, "text_mb": args.text_mb, "rows": rows})


if __name__ == "__main__":
    main()
