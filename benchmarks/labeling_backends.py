"""SQLite vs PostgreSQL labeling figures from one run, on a throw-away PostgreSQL server.

    .venv/bin/python benchmarks/labeling_backends.py [--votes 50] [--annotators 20]

Starts Debian's PostgreSQL in a temporary folder (tests/pg.py, with fsync on: every vote's
commit is as durable as SQLite's ``synchronous=FULL``), then runs ``benchmarks/labeling.py
--database-url`` against it and stops it. Needs ``apt-get install postgresql``.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from pg import PostgresCluster  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=50, help="votes per annotator")
    parser.add_argument("--annotators", type=int, default=20)
    parser.add_argument("--pairs", type=int, default=1200)
    args = parser.parse_args()
    cluster = PostgresCluster(durable=True).start()
    try:
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "labeling.py"), "--database-url", cluster.new_database(),
                        "--votes", str(args.votes), "--annotators", str(args.annotators), "--pairs", str(args.pairs)], check=True)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
