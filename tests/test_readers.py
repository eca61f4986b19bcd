"""Readers: every supported record format and container, and a clear error for each bad input."""
from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from workbench.data.readers import FORMATS, classify, detect_format, read_pairs, transcript_messages
from workbench.data.types import Pair
from workbench.errors import DataError

FIXTURES = Path(__file__).parent / "fixtures" / "data"


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def same_content(a: list[Pair], b: list[Pair]) -> bool:
    def key(p: Pair) -> tuple:
        return (p.id, p.prompt, p.response_a, p.response_b, p.preferred, p.metadata)

    return [key(p) for p in a] == [key(p) for p in b]


# --- record formats ------------------------------------------------------------------------


def test_hh_rlhf_prompt_is_shared_prefix_as_messages() -> None:
    pairs = read_pairs(FIXTURES / "hh_rlhf.jsonl")
    assert len(pairs) == 4
    assert all(p.preferred == "A" for p in pairs)
    assert pairs[0].prompt == [{"role": "user", "content": "What is a good way to keep basil fresh?"}]
    assert pairs[0].response_a.startswith("Trim the stems")
    assert pairs[0].response_b == "Put it in the fridge."
    assert pairs[1].prompt == [
        {"role": "user", "content": "Can you recommend a board game for four players?"},
        {"role": "assistant", "content": "Sure. Do you prefer cooperative or competitive games?"},
        {"role": "user", "content": "Cooperative, please."},
    ]
    assert pairs[1].response_b == "Chess."
    # The common text runs past the marker ("The capital of Australia is "): cut at the marker.
    assert pairs[2].response_a == "The capital of Australia is Canberra."
    assert pairs[2].response_b == "The capital of Australia is Sydney."
    # Real HH-RLHF has a few empty responses; they are kept, not dropped.
    assert pairs[3].response_a == "" and pairs[3].response_b == "You say “merci”."
    assert pairs[0].chosen == pairs[0].response_a


def test_trl_plain_keeps_extra_columns_in_metadata() -> None:
    pairs = read_pairs(FIXTURES / "trl_plain.jsonl")
    assert [p.prompt for p in pairs][:2] == ["Write a haiku about rain.", "Name a prime number greater than 10."]
    assert pairs[1].response_a == "11" and pairs[1].response_b == "12" and pairs[1].preferred == "A"
    assert pairs[2].response_a == "Buenos días."
    assert all(p.metadata == {"source": "hand-written"} for p in pairs)
    assert len({p.id for p in pairs}) == 3


def test_trl_conversational_response_is_last_assistant_message() -> None:
    pairs = read_pairs(FIXTURES / "trl_conversational.jsonl")
    assert pairs[0].prompt[0] == {"role": "system", "content": "You are concise."}
    assert (pairs[0].response_a, pairs[0].response_b) == ("Blue.", "Green.")
    assert len(pairs[2].prompt) == 3 and pairs[2].prompt[-1]["content"] == "Suggest a name for a cat."


def test_trl_implicit_prompt_is_taken_from_the_conversation() -> None:
    pairs = read_pairs(FIXTURES / "trl_implicit.jsonl")
    assert detect_format([json.loads((FIXTURES / "trl_implicit.jsonl").read_text().splitlines()[0])]) == "trl"
    assert pairs[0].prompt == [{"role": "user", "content": "What is 2 + 2?"}]
    assert (pairs[0].response_a, pairs[0].response_b) == ("4", "5")


def test_sharegpt_maps_roles_system_and_string_replies() -> None:
    pairs = read_pairs(FIXTURES / "sharegpt.json")
    assert pairs[0].prompt == [{"role": "user", "content": "Give me a synonym for happy."}]
    assert (pairs[0].response_a, pairs[0].response_b) == ("Joyful.", "Sad.")
    assert pairs[1].prompt[0] == {"role": "system", "content": "Answer in one word."}
    assert [m["role"] for m in pairs[1].prompt] == ["system", "user", "assistant", "user"]
    assert pairs[2].response_a == "It makes other things wet." and pairs[2].metadata == {"category": "trivia"}


def test_alpacaeval_maps_preference_and_keeps_generators() -> None:
    pairs = read_pairs(FIXTURES / "alpacaeval.json")
    assert [p.preferred for p in pairs] == ["A", "B", "tie", "A"]
    assert pairs[0].response_a == "Red, yellow, blue." and pairs[0].prompt == "List three primary colours."
    meta = pairs[3].metadata
    assert meta["generator_1"] == "model-x" and meta["generator_2"] == "model-y"
    assert meta["annotator"] == "weighted_alpaca_eval_gpt4_turbo" and meta["preference"] == 1.2734


def test_unlabeled_csv_with_multiline_cell_and_chat_prompt() -> None:
    pairs = read_pairs(FIXTURES / "unlabeled.csv")
    assert len(pairs) == 3 and all(p.preferred is None for p in pairs)
    assert pairs[0].response_a == "100 °C." and pairs[0].metadata == {"model_a": "m1", "model_b": "m2"}
    assert pairs[1].response_a == "Leaves fall, slowly,\nand the air turns cold."
    assert pairs[2].prompt == [{"role": "user", "content": "Pick a number from 1 to 3."}]


def test_every_fixture_format_is_detected() -> None:
    expected = {"hh_rlhf.jsonl": "hh-rlhf", "trl_plain.jsonl": "trl", "trl_conversational.jsonl": "trl",
                "trl_implicit.jsonl": "trl", "sharegpt.json": "sharegpt", "alpacaeval.json": "alpacaeval"}
    for name, fmt in expected.items():
        text = (FIXTURES / name).read_text(encoding="utf-8")
        records = json.loads(text) if name.endswith(".json") else [json.loads(line) for line in text.splitlines()]
        assert detect_format(records, name) == fmt, name
        assert all(classify(r) == fmt for r in records)
    assert classify({"prompt": "p", "response_a": "a", "response_b": "b"}) == "unlabeled"
    assert set(FORMATS) == {"trl", "hh-rlhf", "sharegpt", "alpacaeval", "unlabeled"}


def test_explicit_format_and_limit() -> None:
    pairs = read_pairs(FIXTURES / "trl_plain.jsonl", format="trl", limit=2)
    assert len(pairs) == 2
    assert read_pairs(FIXTURES / "trl_plain.jsonl", limit=0) == []


def test_repeated_content_gets_distinct_ids_but_repeated_explicit_ids_fail(tmp_path: Path) -> None:
    rec = {"prompt": "p", "chosen": "a", "rejected": "b"}
    pairs = read_pairs(write_jsonl(tmp_path / "dup.jsonl", [rec, rec, rec]))
    assert len({p.id for p in pairs}) == 3 and pairs[1].id == pairs[0].id + "-2"
    with pytest.raises(DataError) as err:
        read_pairs(write_jsonl(tmp_path / "dupid.jsonl", [{**rec, "id": "x"}, {**rec, "id": "x"}]))
    assert err.value.line == 2 and err.value.field == "id"


def test_canonical_pair_dicts_read_back_as_unlabeled_format(tmp_path: Path) -> None:
    original = [Pair("p1", "a", "b", preferred="B", metadata={"k": 1}), Pair([{"role": "user", "content": "q"}], "x", "y")]
    back = read_pairs(write_jsonl(tmp_path / "canon.jsonl", [p.to_dict() for p in original]))
    assert same_content(back, original)


# --- containers ----------------------------------------------------------------------------


def test_all_containers_give_the_same_pairs(tmp_path: Path) -> None:
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = FIXTURES / "trl_conversational.jsonl"
    records = [json.loads(line) for line in src.read_text(encoding="utf-8").splitlines()]
    expected = read_pairs(src)

    gz = tmp_path / "t.jsonl.gz"
    gz.write_bytes(gzip.compress(src.read_bytes()))
    (tmp_path / "list.json").write_text(json.dumps(records), encoding="utf-8")
    (tmp_path / "wrapped.json").write_text(json.dumps({"data": records}), encoding="utf-8")
    shutil.copy(src, tmp_path / "really_jsonl.json")  # ".json" files on the Hub are often JSON Lines
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "t.parquet")
    datasets.Dataset.from_list(records).save_to_disk(str(tmp_path / "hf"))
    datasets.DatasetDict({"train": datasets.Dataset.from_list(records),
                          "test": datasets.Dataset.from_list(records[:1])}).save_to_disk(str(tmp_path / "hfdict"))
    datasets.DatasetDict({"validation": datasets.Dataset.from_list(records)}).save_to_disk(str(tmp_path / "hfone"))

    for name in ("t.jsonl.gz", "list.json", "wrapped.json", "really_jsonl.json", "t.parquet", "hf", "hfdict", "hfone"):
        assert same_content(read_pairs(tmp_path / name), expected), name
    assert len(read_pairs(tmp_path / "t.parquet", limit=1)) == 1


def test_dataset_dict_without_train_lists_splits(tmp_path: Path) -> None:
    import datasets

    ds = datasets.Dataset.from_list([{"prompt": "p", "chosen": "a", "rejected": "b"}])
    datasets.DatasetDict({"dev": ds, "eval": ds}).save_to_disk(str(tmp_path / "hf"))
    with pytest.raises(DataError, match=r"several splits \(dev, eval\)"):
        read_pairs(tmp_path / "hf")


def test_csv_of_trl_columns_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes("\ufeffprompt,chosen,rejected\nHi,Hello!,Go away.\n".encode())
    [pair] = read_pairs(path)
    assert (pair.prompt, pair.chosen, pair.rejected) == ("Hi", "Hello!", "Go away.")


# --- errors --------------------------------------------------------------------------------


def test_missing_path_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist") as err:
        read_pairs(tmp_path / "nope.jsonl")
    assert err.value.path == str(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DataError, match="is empty"):
        read_pairs(tmp_path / "empty.jsonl")
    (tmp_path / "blank.jsonl").write_text("\n\n  \n")
    with pytest.raises(DataError, match="contains no records"):
        read_pairs(tmp_path / "blank.jsonl")
    (tmp_path / "empty.json").write_text("[]")
    with pytest.raises(DataError, match="contains no records"):
        read_pairs(tmp_path / "empty.json")


def test_malformed_json_line_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n\n{"prompt": "p", "chosen": "a", "rejected": \n')
    with pytest.raises(DataError) as err:
        read_pairs(path)
    assert err.value.line == 3 and "not valid JSON" in str(err.value) and "line 3" in str(err.value)


def test_missing_field_names_field_format_and_present_fields(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", [
        {"prompt": "p", "response_a": "a", "response_b": "b"},
        {"prompt": "p", "response_a": "a", "notes": "x"},
    ])
    with pytest.raises(DataError) as err:
        read_pairs(path)
    e = err.value
    assert (e.line, e.field) == (2, "response_b")
    assert "'unlabeled'" in str(e) and "fields present: prompt, response_a, notes" in str(e)


def test_misnamed_field_suggests_the_expected_name(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        read_pairs(write_jsonl(tmp_path / "a.jsonl", [{"prompt": "p", "chosen": "a", "rejectd": "b"}]))
    assert err.value.field == "rejected" and err.value.line == 1
    assert "Did you mean 'rejectd'? Rename it to 'rejected'" in str(err.value)
    with pytest.raises(DataError) as err:
        read_pairs(write_jsonl(tmp_path / "b.jsonl", [{"promt": "p", "chosen": "a", "rejected": "b"}]))
    assert err.value.field == "prompt" and "Did you mean 'promt'" in str(err.value)
    with pytest.raises(DataError) as err:
        read_pairs(write_jsonl(tmp_path / "c.jsonl", [{"question": "q", "answer": "a"}]))
    assert "does not look like any known preference format" in str(err.value) and "hh-rlhf" in str(err.value)


def test_mixed_formats_in_one_file(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mixed.jsonl", [
        {"prompt": "p", "chosen": "a", "rejected": "b"},
        {"prompt": "p", "chosen": "a", "rejected": "b"},
        {"prompt": "p", "response_a": "a", "response_b": "b"},
    ])
    with pytest.raises(DataError) as err:
        read_pairs(path)
    assert err.value.line == 3
    assert "looks like format 'unlabeled' while the file was detected as 'trl' from line 1" in str(err.value)


def test_not_utf8_suggests_iconv(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"prompt": "p", "chosen": "a", "rejected": "b"}\n'
                     + '{"prompt": "café", "chosen": "a", "rejected": "b"}\n'.encode("latin-1"))
    with pytest.raises(DataError) as err:
        read_pairs(path)
    assert err.value.line == 2 and "not UTF-8" in str(err.value) and "iconv" in str(err.value)
    csv_path = tmp_path / "latin1.csv"
    csv_path.write_bytes("prompt,chosen,rejected\nHi,a,b\nCafé,a,b\n".encode("latin-1"))
    with pytest.raises(DataError, match="iconv") as err:
        read_pairs(csv_path)
    assert err.value.line == 3


def test_huge_line_is_rejected_with_its_number(tmp_path: Path) -> None:
    path = tmp_path / "huge.jsonl"
    small = json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"})
    path.write_text(small + "\n" + json.dumps({"prompt": "x" * 5000, "chosen": "a", "rejected": "b"}) + "\n")
    with pytest.raises(DataError) as err:
        read_pairs(path, max_line_bytes=1000)
    assert err.value.line == 2 and "longer than 1,000 bytes" in str(err.value)
    assert len(read_pairs(path)) == 2  # the default limit (10 MB) accepts it
    csv_path = tmp_path / "huge.csv"
    csv_path.write_text(f"prompt,chosen,rejected\np,a,b\np,{'x' * 5000},b\n")
    with pytest.raises(DataError, match="not valid CSV") as err:
        read_pairs(csv_path, max_line_bytes=1000)
    assert err.value.line == 3
    assert len(read_pairs(csv_path)) == 2


def test_limit_stops_before_later_lines_are_parsed(tmp_path: Path) -> None:
    path = tmp_path / "tail_broken.jsonl"
    path.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n' * 2 + "{broken\n")
    assert len(read_pairs(path, limit=2)) == 2
    with pytest.raises(DataError):
        read_pairs(path, limit=3)


def test_non_string_where_string_required(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        read_pairs(write_jsonl(tmp_path / "n.jsonl", [{"prompt": "p", "chosen": 42, "rejected": "b"}]))
    assert err.value.field == "chosen" and "must be a string, got int" in str(err.value)
    with pytest.raises(DataError) as err:
        read_pairs(write_jsonl(tmp_path / "m.jsonl", [{"prompt": [{"role": "user", "content": 3}], "chosen": "a", "rejected": "b"}]))
    assert err.value.field == "prompt[0]"
    with pytest.raises(DataError, match="not an object"):
        read_pairs(write_jsonl(tmp_path / "l.jsonl", [["p", "a", "b"]]))


def test_unknown_format_lists_known_ones(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        read_pairs(FIXTURES / "trl_plain.jsonl", format="trll")
    assert "Did you mean 'trl'" in str(err.value)
    for name in FORMATS:
        assert name in str(err.value)


def test_forced_format_reports_missing_fields(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        read_pairs(FIXTURES / "trl_plain.jsonl", format="alpacaeval")
    assert err.value.field == "instruction" and "'alpacaeval'" in str(err.value) and err.value.line == 1


def test_bad_alpacaeval_preference_and_hh_without_assistant(tmp_path: Path) -> None:
    rec = {"instruction": "i", "output_1": "a", "output_2": "b", "preference": 3}
    with pytest.raises(DataError) as err:
        read_pairs(write_jsonl(tmp_path / "a.jsonl", [rec]))
    assert err.value.field == "preference"
    with pytest.raises(DataError, match="no '.*Assistant:' turn"):
        read_pairs(write_jsonl(tmp_path / "h.jsonl", [{"chosen": "\n\nAssistant: a", "rejected": "Human: b"}]), format="hh-rlhf")
    with pytest.raises(DataError, match="prompt is empty"):
        read_pairs(write_jsonl(tmp_path / "e.jsonl", [{"chosen": "\n\nAssistant: a", "rejected": "\n\nAssistant: b"}]))


def test_unsupported_suffix_and_plain_folder(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("hello")
    with pytest.raises(DataError, match="unsupported file type '.txt'"):
        read_pairs(tmp_path / "data.txt")
    (tmp_path / "folder").mkdir()
    with pytest.raises(DataError, match="save_to_disk"):
        read_pairs(tmp_path / "folder")


def test_corrupt_gzip_and_parquet(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="gzip"):
        read_pairs(tmp_path / "x.jsonl.gz")
    (tmp_path / "x.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="Parquet"):
        read_pairs(tmp_path / "x.parquet")


def test_error_deep_in_file_returns_nothing(tmp_path: Path) -> None:
    good = {"prompt": "p", "chosen": "a", "rejected": "b"}
    path = write_jsonl(tmp_path / "late.jsonl", [good] * 50 + [{"prompt": "p", "chosen": None, "rejected": "b"}])
    with pytest.raises(DataError) as err:
        read_pairs(path)
    assert err.value.line == 51 and err.value.field == "chosen"


def test_transcript_messages() -> None:
    assert transcript_messages("\n\nHuman: hi\n\nAssistant: hello\n\nHuman: bye") == [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}, {"role": "user", "content": "bye"}]


def test_alpacaeval_nan_preference_is_counted_and_refused_unless_allowed(tmp_path: Path) -> None:
    """A NaN preference is a judge that gave no verdict: said with its count, never silently unlabeled."""
    path = tmp_path / "annotations.json"
    rows = [{"instruction": f"q{i}", "output_1": f"a{i}", "output_2": f"b{i}", "preference": p}
            for i, p in enumerate([1.0, float("nan"), 2.0, "NaN", None])]
    path.write_text(json.dumps(rows))  # json.dumps writes NaN as the bare token AlpacaEval files hold
    with pytest.raises(DataError) as info:
        read_pairs(path)
    message = info.value.message
    assert "2 of 5 records look like mistakes" in message and "record 2, record 4" in message
    assert "no-verdict" in (info.value.hint or "")
    pairs = read_pairs(path, allow=["no-verdict"])
    assert [p.preferred for p in pairs] == ["A", None, "B", None, None]  # kept as unlabeled only when asked
