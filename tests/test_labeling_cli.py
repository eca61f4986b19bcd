"""``workbench label ...`` on a real SQLite home: good paths in-process (typer's CliRunner on
the plugin's commands), refusals through the real ``workbench`` process (exit code 2)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from plugins.labeling.cli import label_app
from workbench.data.types import Pair
from workbench.labeling import LabelingStore
from workbench.store import Store

SOURCES = [("big", "small"), ("small", "tiny"), ("big", "tiny")]


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    """Dataset 'ds' (12 pairs between three sources) and session 's' with two annotators' votes."""
    pairs = [Pair(f"prompt {i}", f"answer A{i}", f"answer B{i}", id=f"p{i:02d}",
                  metadata={"source_a": SOURCES[i % 3][0], "source_b": SOURCES[i % 3][1]}) for i in range(12)]
    with Store(tmp_path / "workbench.sqlite") as store:
        store.import_pairs("ds", pairs)
        lab = LabelingStore(store)
        lab.create_session("s", "ds", {"overlap": 2})
        for who, flip in (("ann", False), ("ben", True)):
            lab.join("s", who)
            for i, p in enumerate(pairs):
                outcome = "tie" if i == 5 else ("B" if (i == 3 and flip) else "A")
                lab.vote("s", who, p.id, outcome, strength=2 if outcome != "tie" else None)
    return tmp_path


def run(home: Path, *args: str) -> str:
    result = CliRunner().invoke(label_app, [*args, "--home", str(home)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def workbench(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "WORKBENCH_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "workbench.cli", "label", *args], capture_output=True, text=True, env=env, timeout=120)


def test_sessions_create_and_list(home: Path) -> None:
    out = run(home, "sessions")
    assert "s " in out and "100%" in out  # 12 pairs × overlap 2, all covered
    out = run(home, "create", "s2", "--dataset", "ds", "--aspects", "helpfulness, verbosity", "--overlap", "3", "--order", "random")
    assert "created session 's2' over 12 pairs" in out and "helpfulness, verbosity" in out
    (home / "gold.json").write_text(json.dumps({"p01": "A"}))
    run(home, "create", "s3", "--dataset", "ds", "--order", "active", "--gold", str(home / "gold.json"))
    run(home, "create", "s4", "--dataset", "ds", "--order", "model-uncertain", "--uncertainty-model", "tiny", "--refit-every", "4",
        "--repeat-share", "0.2")
    rows = {r["name"]: r for r in json.loads(run(home, "sessions", "--json"))}
    assert rows["s"]["judgments"] == 24 and rows["s"]["annotators"] == 2
    assert (rows["s2"]["order"], rows["s2"]["overlap"], rows["s2"]["needed"], rows["s2"]["progress"]) == ("random", 3, 36, "0%")
    assert rows["s3"]["order"] == "active"
    with Store(home / "workbench.sqlite") as store:
        lab = LabelingStore(store)
        assert lab.session("s2").settings.aspects == ["helpfulness", "verbosity"]
        assert lab.session("s3").settings.gold == {"p01": "A"}
        s4 = lab.session("s4").settings
        assert (s4.order, s4.uncertainty_model, s4.refit_every, s4.repeat_share) == ("model-uncertain", "tiny", 4, 0.2)
    assert "is closed" in run(home, "close", "s2") and "is open" in run(home, "reopen", "s2")


def test_stats_prints_ratings_with_cis_and_agreement(home: Path) -> None:
    out = run(home, "stats", "s")
    assert "Bradley–Terry ratings" in out and "win rate" in out and "Davidson" in out
    lines = [line.split() for line in out.splitlines()]
    ranked = [w[0] for w in lines if w and w[0] in ("big", "small", "tiny")]
    assert ranked[:3] == ["big", "small", "tiny"]  # A (the first source) wins nearly always
    assert "Fleiss' κ (12 items with ≥ 2 votes)" in out and "Krippendorff" in out and "ann" in out and "ben" in out
    report = json.loads(run(home, "stats", "s", "--ties", "half", "--json"))
    assert report["tie_model"] == "half" and [r["source"] for r in report["ratings"]] == ["big", "small", "tiny"]
    assert all(r["low"] <= r["theta"] <= r["high"] for r in report["ratings"])
    assert report["agreement"]["items_with_overlap"] == 12
    assert report["did_it_win"]["candidate"] == "big" and "error" in report["explained"]  # 12 pairs: too few to explain


def test_export_every_format(home: Path) -> None:
    report = json.loads(run(home, "export", "s", str(home / "out.jsonl")))
    rows = [json.loads(line) for line in (home / "out.jsonl").read_text().splitlines()]
    assert report["written"] == len(rows) == 22 and report["skipped"] == {"tie": 2}
    assert {r["annotator"] for r in rows} == {"ann", "ben"} and all(r["margin"] == 2 for r in rows)
    report = json.loads(run(home, "export", "s", str(home / "maj.parquet"), "--format", "trl-parquet", "--aggregate", "majority"))
    assert report["written"] == len(pd.read_parquet(home / "maj.parquet")) == 10  # p03 is split 1–1, p05 is a tie
    run(home, "export", "s", str(home / "hf"), "--format", "hf-dataset")
    assert (home / "hf" / "dataset_info.json").exists() or any((home / "hf").iterdir())
    assert json.loads(run(home, "export", "s", str(home / "long.csv"), "--format", "long-table-csv"))["rows"] == 24
    long = pd.read_csv(home / "long.csv")
    assert len(long) == 24 and sorted(long["outcome"].unique()) == ["A", "B", "tie"]


def test_refusals_exit_2_with_a_clear_message_and_change_nothing(home: Path) -> None:
    cases = [
        (["create", "x", "--dataset", "nope"], "No dataset named 'nope'"),
        (["create", "x", "--dataset", "ds", "--order", "zigzag"], "Unknown pair order 'zigzag'"),
        (["create", "x", "--dataset", "ds", "--repeat-share", "0.9"], "repeat_share must be a number from 0 to 0.5"),
        (["create", "s", "--dataset", "ds"], "already exists"),
        (["stats", "nope"], "No labeling session named 'nope'"),
        (["export", "s", str(home / "x.xml"), "--format", "xml"], "Unknown export format 'xml'"),
        (["export", "s", str(home / "x.txt"), "--format", "long-table-csv"], "writes a .csv file, but the name ends in '.txt'"),
    ]
    for args, message in cases:
        proc = workbench(home, *args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert proc.stderr.startswith("error: ") and message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    with Store(home / "workbench.sqlite") as store:
        assert [s.name for s in LabelingStore(store).list_sessions()] == ["s"]
    assert not (home / "x.xml").exists() and not (home / "x.txt").exists()


def test_import_judgments_through_the_real_cli(home: Path) -> None:
    fixture = Path(__file__).parent / "fixtures" / "data" / "alpacaeval.json"
    proc = workbench(home, "import-judgments", str(fixture), "--session", "judges")
    assert proc.returncode == 0, proc.stderr
    assert "session 'judges': 4 pairs, 4 votes by alpaca_eval_gpt4, weighted_alpaca_eval_gpt4_turbo" in proc.stdout
    with Store(home / "workbench.sqlite") as store:
        assert sorted(j.outcome.value for j in LabelingStore(store).judgments("judges")) == ["A", "A", "B", "tie"]
    again = workbench(home, "import-judgments", str(fixture), "--session", "judges")
    assert again.returncode == 2 and "already exists" in again.stderr
    missing = workbench(home, "import-judgments", str(home / "nope.json"), "--session", "other")
    assert missing.returncode == 2 and "nope.json" in missing.stderr and "Traceback" not in missing.stderr
    with Store(home / "workbench.sqlite") as store:
        assert "other" not in {s.name for s in LabelingStore(store).list_sessions()}


def test_label_serve_serves_the_fast_page_and_refuses_an_open_bind_without_logins(home: Path, server_process) -> None:
    server = server_process(home, ["workbench.cli", "label", "serve", "--api-only"])
    page = httpx.get(f"{server.url}/label/s", timeout=30)
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    token = httpx.post(f"{server.url}/api/labeling/sessions/s/annotators", json={"name": "cat"}, timeout=30).json()["token"]
    item = httpx.get(f"{server.url}/api/labeling/sessions/s/annotators/cat/next", headers={"x-annotator-token": token}, timeout=30)
    assert item.status_code == 200 and item.json()["item"] is None  # overlap 2, and ann and ben judged every pair
    refused = workbench(home, "serve", "--host", "0.0.0.0", "--port", "1")
    assert refused.returncode == 2 and "--auth" in refused.stderr + refused.stdout, refused.stderr


def test_a_gold_file_is_read_like_every_user_file(home: Path) -> None:
    """A pipe is refused at once (not read until it closes), a missing or broken file is named, and no session is made."""
    os.mkfifo(home / "gold.pipe")
    (home / "broken.json").write_text('{"p01": "A"')
    for name, said in (("gold.pipe", "named pipe"), ("missing.json", "does not exist"), ("broken.json", "line 1")):
        proc = workbench(home, "create", "g", "--dataset", "ds", "--gold", str(home / name))
        assert proc.returncode != 0 and name in proc.stderr and said in proc.stderr, proc.stderr
    with Store(home / "workbench.sqlite") as store:
        assert [s.name for s in LabelingStore(store).list_sessions()] == ["s"]  # the fixture's session only
