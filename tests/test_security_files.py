"""Hostile and careless dataset files (issue 16 §3): each gets one clear DataError, nothing hangs.

Every file here is real, written in tmp_path (pipes, links, devices, /proc included); the
"silently accepted" kinds are refused with a count and kept only when allowed by name.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from workbench.data.readers import QUALITY_CHECKS, read_pairs, record_format
from workbench.errors import ConfigError, DataError

GOOD = {"prompt": "Say hi.", "chosen": "Hi!", "rejected": "Go away."}


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def refused(path: Path, **kwargs: object) -> DataError:
    with pytest.raises(DataError) as err:
        read_pairs(path, **kwargs)
    assert "\n" not in err.value.message, "the reason fits on one line"
    assert err.value.path == str(path)
    return err.value


# --- hostile files ---------------------------------------------------------------------


def test_deeply_nested_json_is_refused_not_a_recursion_error(tmp_path: Path) -> None:
    deep = '{"prompt": "p", "chosen": "a", "rejected": "b", "extra": ' + "[" * 50_000 + "]" * 50_000 + "}"
    err = refused(write_lines(tmp_path / "deep.jsonl", [json.dumps(GOOD), deep]))
    assert err.line == 2 and "levels deep" in err.message
    # Shallow enough for the C parser, too deep for a record: the walk catches it and names the field.
    nested = {**GOOD, "meta": json.loads("[" * 150 + "]" * 150)}
    err = refused(write_lines(tmp_path / "nested.jsonl", [json.dumps(nested)]))
    assert err.field == "meta" and "more than 100 levels" in err.message
    err = refused(write_lines(tmp_path / "deep.json", ["[" * 50_000 + "]" * 50_000]))
    assert "levels deep" in err.message


def test_lone_surrogate_is_refused_with_its_field(tmp_path: Path) -> None:
    line = '{"prompt": "p", "chosen": "a\\ud800b", "rejected": "b"}'  # a JSON escape Python decodes to a lone surrogate
    err = refused(write_lines(tmp_path / "surrogate.jsonl", [line]))
    assert err.field == "chosen" and err.line == 1 and "lone surrogate (\\ud800)" in err.message
    # A proper surrogate pair (an emoji written as escapes) is valid text.
    ok = write_lines(tmp_path / "emoji.jsonl", ['{"prompt": "p", "chosen": "\\ud83d\\ude00", "rejected": "b"}'])
    assert read_pairs(ok)[0].response_a == "\N{GRINNING FACE}"


def test_whole_file_formats_have_a_size_cap_with_a_jsonl_hint(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_text(json.dumps([GOOD] * 100), encoding="utf-8")
    err = refused(big, max_file_bytes=1000)
    assert "larger than" in err.message and ".jsonl" in (err.hint or "")
    csv_path = tmp_path / "big.csv"
    csv_path.write_text("prompt,chosen,rejected\n" + "p,a,b\n" * 500, encoding="utf-8")
    assert "larger than" in refused(csv_path, max_file_bytes=1000).message
    assert len(read_pairs(big, allow=["identical"])) == 100  # under the default cap
    # JSONL is streamed: the same records in JSONL have no whole-file cap.
    jsonl = write_lines(tmp_path / "big.jsonl", [json.dumps({**GOOD, "id": i}) for i in range(100)])
    assert len(read_pairs(jsonl, max_file_bytes=1000)) == 100


def test_link_to_dev_zero_is_refused_as_a_device(tmp_path: Path) -> None:
    for name in ("zero.json", "zero.csv", "zero.jsonl", "zero.parquet"):
        link = tmp_path / name
        link.symlink_to("/dev/zero")
        err = refused(link)
        assert "character device" in err.message and "not a regular file" in err.message


def test_named_pipe_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []
    reader = threading.Thread(target=lambda: outcome.append(pytest.raises(DataError, read_pairs, fifo).value), daemon=True)
    reader.start()
    reader.join(timeout=20)
    assert not reader.is_alive(), "reading a named pipe blocked"
    assert "named pipe" in outcome[0].message


def test_symlink_loop_and_dangling_link_say_what_they_are(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.symlink_to(b)
    b.symlink_to(a)
    assert "symbolic link loop" in refused(a).message
    dangling = tmp_path / "dangling.jsonl"
    dangling.symlink_to(tmp_path / "gone.jsonl")
    err = refused(dangling)
    assert "symbolic link to" in err.message and "does not exist" in err.message


def test_proc_file_is_not_called_empty_and_its_content_is_not_shown() -> None:
    environ = Path("/proc/self/environ")
    err = refused(environ)
    assert "virtual system file" in err.message and "empty" not in err.message
    assert os.environ.get("PATH", "/nonexistent") not in str(err)


def test_directory_that_is_not_a_dataset_and_empty_file_keep_their_messages(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("")
    assert refused(tmp_path / "empty.jsonl").message.endswith("is empty.")
    assert "not a `datasets.Dataset.save_to_disk` folder" in refused(tmp_path).message


# --- silently accepted before, refused by default with a count now ------------------------


def test_identical_and_empty_pairs_are_refused_with_counts_unless_allowed(tmp_path: Path) -> None:
    records = [GOOD, {"prompt": "q", "chosen": "same", "rejected": " same "}, {"prompt": " ", "chosen": "", "rejected": "\t"},
               {"prompt": "r", "chosen": "x", "rejected": "x"}]
    path = write_lines(tmp_path / "careless.jsonl", [json.dumps(r) for r in records])
    err = refused(path)
    assert err.message.startswith(f"{path}: 3 of 4 records look like mistakes, so none were read")
    assert f"{QUALITY_CHECKS['identical']}: 2 at line 2, line 4" in err.message
    assert f"{QUALITY_CHECKS['empty']}: 1 at line 3" in err.message
    assert "'identical'" in (err.hint or "") and "'empty'" in (err.hint or "")
    assert "empty" in refused(path, allow=["identical"]).message
    pairs = read_pairs(path, allow=["identical", "empty"])
    assert [p.response_b for p in pairs] == ["Go away.", " same ", "\t", "x"]


def test_sharegpt_without_a_human_turn_or_with_unknown_roles(tmp_path: Path) -> None:
    def convo(*turns: tuple[str, str]) -> dict:
        return {"conversations": [{"from": r, "value": v} for r, v in turns], "chosen": {"from": "gpt", "value": "yes"},
                "rejected": {"from": "gpt", "value": "no"}}

    records = [convo(("human", "hi?")), convo(("gpt", "I speak first.")), convo(("human", "hi"), ("narrator", "meanwhile")),
               convo(("observation", "tool output"), ("human", "and?"))]
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    err = refused(path)
    assert "2 of 4 records" in err.message
    assert f"{QUALITY_CHECKS['no-user-turn']}: 1 at record 2" in err.message
    assert f"{QUALITY_CHECKS['unknown-role']} ('narrator'): 1 at record 3" in err.message
    pairs = read_pairs(path, allow=["no-user-turn", "unknown-role"])
    assert pairs[2].prompt[1] == {"role": "narrator", "content": "meanwhile"}  # kept as written
    assert pairs[3].prompt[0]["role"] == "tool"  # LLaMA-Factory's observation turn is a known role


def test_duplicate_json_keys_and_csv_headers_are_ambiguous(tmp_path: Path) -> None:
    line = '{"prompt": "p", "chosen": "first", "chosen": "second", "rejected": "b"}'
    path = write_lines(tmp_path / "dup.jsonl", [json.dumps(GOOD), line])
    err = refused(path)
    assert f"{QUALITY_CHECKS['duplicate-keys']} ('chosen'): 1 at line 2" in err.message
    assert read_pairs(path, allow=["duplicate-keys"])[1].response_a == "second"  # Python's json keeps the last
    nested = write_lines(tmp_path / "nested.jsonl", ['{"prompt": "p", "chosen": "a", "rejected": "b", "m": {"k": 1, "k": 2}}'])
    assert "('k')" in refused(nested).message
    csv_path = tmp_path / "dup.csv"
    csv_path.write_text("prompt,chosen,rejected,chosen\np,a,b,c\nq,d,e,f\n", encoding="utf-8")
    err = refused(csv_path)
    assert "('chosen'): 2 at line 2, line 3" in err.message
    assert [p.response_a for p in read_pairs(csv_path, allow=["duplicate-keys"])] == ["c", "f"]


def test_places_are_listed_in_file_order_and_capped(tmp_path: Path) -> None:
    same = json.dumps({"prompt": "p", "chosen": "x", "rejected": "x"})
    path = write_lines(tmp_path / "many.jsonl", [json.dumps({**GOOD, "id": 0})] + [same] * 11)
    assert f"{QUALITY_CHECKS['identical']}: 11 at line 2, line 3, line 4, line 5, line 6, …" in refused(path).message


def test_boolean_id_is_refused(tmp_path: Path) -> None:
    err = refused(write_lines(tmp_path / "boolid.jsonl", [json.dumps({**GOOD, "id": True})]))
    assert err.field == "id" and "got bool" in err.message


def test_unknown_allow_name_suggests_the_right_one(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "ok.jsonl", [json.dumps(GOOD)])
    with pytest.raises(ConfigError, match="Did you mean 'identical'"):
        read_pairs(path, allow=["identicle"])


# --- the record-format registry ------------------------------------------------------------


def test_record_format_registry_refuses_a_duplicate_name() -> None:
    from workbench.data.readers import FORMATS

    before = FORMATS["trl"]
    with pytest.raises(ConfigError, match="'trl' is already registered"):
        record_format("trl", required=("question", "good", "bad"))(lambda record: None)
    assert FORMATS["trl"] is before


def test_detect_file_format_reads_one_record_and_refuses_what_read_pairs_refuses(tmp_path: Path) -> None:
    from workbench.data.readers import detect_file_format

    path = write_lines(tmp_path / "two.jsonl", [json.dumps(GOOD), "{not json"])
    assert detect_file_format(path) == "trl"  # the broken second line is never parsed
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="named pipe"):
        detect_file_format(fifo)
