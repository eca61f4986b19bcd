"""``--database-url`` on the servers: ``workbench label serve --database-url URL`` serves the
sessions of that PostgreSQL database (not the home's SQLite file), and a URL that is not
PostgreSQL is refused at start naming the setting, its password masked."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
from pg import PASSWORD

from workbench.data.types import Pair
from workbench.labeling import LabelingStore
from workbench.store import Store


def test_label_serve_database_url_serves_that_database(tmp_path: Path, postgres, server_process) -> None:
    url = postgres.new_database()
    with Store(url) as store:
        store.import_pairs("ds", [Pair("q", "a", "b", id="p0")])
        LabelingStore(store).create_session("in-postgres", "ds")
    with Store(tmp_path / "workbench.sqlite") as store:  # the home's own file holds another session
        store.import_pairs("ds", [Pair("q", "a", "b", id="p0")])
        LabelingStore(store).create_session("in-sqlite", "ds")
    server = server_process(tmp_path, ["workbench.cli", "label", "serve", "--api-only", "--database-url", url])
    sessions = httpx.get(f"{server.url}/api/labeling/sessions", timeout=30).json()
    assert [s["name"] for s in sessions["sessions"]] == ["in-postgres"]
    assert PASSWORD not in server.logs()


def test_a_url_that_is_not_postgresql_is_refused_at_start(tmp_path: Path) -> None:
    for argv in (["label", "serve", "--api-only"], ["serve"]):
        run = subprocess.run([sys.executable, "-m", "workbench.cli", *argv, "--home", str(tmp_path), "--database-url",
                              "mysql://wb:hunter2@127.0.0.1/db"], capture_output=True, text=True, timeout=120)
        assert run.returncode == 2, run.stdout + run.stderr
        assert "WORKBENCH_DATABASE_URL (or --database-url)" in run.stderr and "hunter2" not in run.stderr + run.stdout
