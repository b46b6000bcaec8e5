"""`python -m benchmarks [name ...]`: run the benchmarks one after another, each in its own process.

Each prints one JSON object on stdout (progress goes to stderr); copies are kept in
.bench-cache/results/. Names: indexing, query, pipeline, worker, intake, redaction, guardrails, impact, languages (default: all, in that order;
the first run builds and caches the 20,000-chunk index, which takes several minutes), and
intake_instructions, run only when named (it needs valgrind).
"""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = ["indexing", "query", "pipeline", "worker", "intake", "redaction", "guardrails", "impact", "languages"]
ON_REQUEST = ["intake_instructions"]


def main(argv: list[str]) -> int:
    names = argv or BENCHMARKS
    unknown = sorted(set(names) - set(BENCHMARKS) - set(ON_REQUEST))
    if unknown:
        print(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS + ON_REQUEST)}",
              file=sys.stderr)
        return 2
    failed = []
    for name in names:
        if subprocess.call([sys.executable, "-m", f"benchmarks.bench_{name}"]) != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
