"""Import errors in the user's words: the Models & data form names the file the user picked or
typed (never the copy under uploads/ nor the SQLite store), its hints name the form's controls,
and relative typed paths start from the data folder; the CLI keeps naming the path typed."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from plugins.home import actions
from workbench.context import AppContext
from workbench.data.readers import FileDataError, read_pairs
from workbench.errors import DataError, SecurityError
from workbench.settings import Settings

GOOD = {"prompt": "q", "chosen": "short", "rejected": "long and winding"}
BAD_LINE_3 = [GOOD, {**GOOD, "prompt": "q2"}, {"prompt": "q3", "chosen": 5, "rejected": "b"}]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def ctx(tmp_path: Path) -> AppContext:
    return AppContext(Settings(home=tmp_path / "home"))


def _import(ctx: AppContext, *, upload: Path | None = None, path: str = "", name: str = "", replace: bool = False,
            allow: tuple[str, ...] = ()) -> tuple[str, str]:
    received = {str(upload)} if upload else set()
    return actions.import_dataset(ctx, upload=str(upload) if upload else None, path=path, name=name, format="auto",
                                  replace=replace, received=received, allow=allow)


def _assert_users_words(err: BaseException, ctx: AppContext) -> str:
    text = str(err)
    assert "uploads" not in text and str(ctx.settings.home) not in text and ".db" not in text and "sqlite" not in text.lower()
    assert "replace=True" not in text and "read_pairs" not in text and "allow=" not in text
    return text


def test_an_upload_error_names_the_file_the_user_picked(ctx: AppContext, tmp_path: Path) -> None:
    picked = _jsonl(tmp_path / "browser-tmp" / "my-bad-prefs.jsonl", BAD_LINE_3)
    with pytest.raises(DataError) as err:
        _import(ctx, upload=picked)
    text = _assert_users_words(err.value, ctx)
    assert text.startswith("my-bad-prefs.jsonl, line 3, field 'chosen': must be a string, got int")
    assert err.value.path == "my-bad-prefs.jsonl" and err.value.line == 3 and err.value.field == "chosen"
    assert not list((ctx.settings.home / "data" / "uploads").glob("my-bad-prefs*"))  # the copy is gone


def test_refused_records_hint_at_the_keep_anyway_boxes(ctx: AppContext, tmp_path: Path) -> None:
    picked = _jsonl(tmp_path / "up" / "twins.jsonl", [GOOD, {"prompt": "q2", "chosen": "same", "rejected": "same"}])
    with pytest.raises(DataError) as err:
        _import(ctx, upload=picked)
    text = _assert_users_words(err.value, ctx)
    assert text.startswith("twins.jsonl: 1 of 2 records look like mistakes") and "line 2" in text
    assert err.value.hint == "Fix or drop those records, or tick “the two responses are identical” under “Keep anyway” and import again."
    assert _import(ctx, upload=picked, allow=("identical",))[0] == "twins"


def test_an_existing_name_says_tick_replace_and_names_no_store_file(ctx: AppContext, tmp_path: Path) -> None:
    picked = _jsonl(tmp_path / "up" / "prefs.jsonl", [GOOD])
    assert _import(ctx, upload=picked)[0] == "prefs"
    with pytest.raises(DataError) as err:
        _import(ctx, upload=picked)
    _assert_users_words(err.value, ctx)
    assert "A dataset named 'prefs' already exists (1 pairs)" in str(err.value)
    assert "tick “Replace a dataset of that name”" in (err.value.hint or "")
    assert _import(ctx, upload=picked, replace=True)[0] == "prefs"
    with pytest.raises(DataError, match="cannot be used: it contains the control") as bad_name:
        _import(ctx, upload=picked, name="bad\x07name")
    _assert_users_words(bad_name.value, ctx)


def test_a_relative_typed_path_starts_from_the_data_folder(ctx: AppContext, tmp_path: Path, monkeypatch) -> None:
    data = ctx.settings.all_data_roots()[0]
    _jsonl(data / "sets" / "good.jsonl", [GOOD])
    _jsonl(data / "sets" / "bad.jsonl", BAD_LINE_3)
    monkeypatch.chdir(tmp_path)  # not the data folder: the server's working folder must not matter
    assert _import(ctx, path="sets/good.jsonl")[0] == "good"
    with pytest.raises(DataError) as err:
        _import(ctx, path="sets/bad.jsonl")
    assert _assert_users_words(err.value, ctx).startswith("sets/bad.jsonl, line 3, field 'chosen'")
    with pytest.raises(DataError) as missing:
        _import(ctx, path="sets/nope.jsonl")
    assert str(missing.value).startswith("sets/nope.jsonl: there is no such file in the data folders")
    assert "current folder" not in str(missing.value)
    _jsonl(tmp_path / "outside.jsonl", [GOOD])
    with pytest.raises(SecurityError, match="outside the configured data folders"):
        _import(ctx, path="../../outside.jsonl")


def test_shown_as_replaces_the_path_in_hints_too(tmp_path: Path) -> None:
    latin1 = tmp_path / "copy-1234.jsonl"
    latin1.write_bytes(b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n')
    with pytest.raises(FileDataError) as err:
        read_pairs(latin1)
    assert str(latin1) in err.value.hint
    shown = err.value.shown_as("café.jsonl")
    assert str(latin1) not in str(shown) and "'café.jsonl'" in shown.hint and shown.line == 1
    assert str(shown).startswith("café.jsonl, line 1: is not UTF-8 text")


def test_the_cli_names_the_path_the_user_typed(tmp_path: Path) -> None:
    _jsonl(tmp_path / "work" / "bad.jsonl", BAD_LINE_3)
    out = subprocess.run([sys.executable, "-m", "workbench.cli", "data", "import", "bad.jsonl", "--home", str(tmp_path / "home")],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path / "work")
    assert out.returncode != 0 and "bad.jsonl, line 3, field 'chosen'" in out.stderr
    assert "Traceback" not in out.stderr and str(tmp_path / "work") not in out.stderr
    _jsonl(tmp_path / "work" / "twins.jsonl", [GOOD, {"prompt": "q2", "chosen": "same", "rejected": "same"}])
    refused = subprocess.run([sys.executable, "-m", "workbench.cli", "data", "import", "twins.jsonl", "--home", str(tmp_path / "home")],
                             capture_output=True, text=True, timeout=300, cwd=tmp_path / "work")
    assert refused.returncode != 0 and refused.stderr.startswith("error: twins.jsonl: 1 of 2 records look like mistakes")
    assert "--allow identical" in refused.stderr  # the CLI's own words for keeping them
