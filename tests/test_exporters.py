"""Exporters: TRL DPO files that TRL really trains on, a long table that keeps every judgment,
and atomic writes that leave nothing behind on failure."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.data.exporters import LONG_TABLE_COLUMNS, export_long_table, export_pairs
from workbench.data.readers import read_pairs
from workbench.data.types import Judgment, Outcome, Pair
from workbench.errors import DataError
from workbench.files import atomic_path

FIXTURES = Path(__file__).parent / "fixtures" / "data"
CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a fruit."}]


def mixed_pairs() -> list[Pair]:
    return [
        Pair("Say hi.", "Hello!", "Go away.", preferred="A"),
        Pair("Two plus two?", "Five.", "Four.", preferred="B", metadata={"note": "B wins"}),
        Pair("Pick a colour.", "Red.", "Blue.", preferred="tie"),
        Pair("Unjudged prompt.", "x", "y"),
        Pair("Another unjudged.", "p", "q"),
    ]


def chat_pairs() -> list[Pair]:
    return [
        Pair(CHAT, "Apple.", "A car.", preferred="A"),
        Pair([{"role": "user", "content": "Capital of France?"}], "Lyon.", "Paris.", preferred="B"),
        Pair("A plain-text prompt in a chat dataset.", "Yes.", "No.", preferred="A"),
    ]


def as_chosen_rejected(pairs: list[Pair]) -> list[tuple]:
    return [(p.id, p.prompt, p.chosen, p.rejected) for p in pairs if p.preferred in ("A", "B")]


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_trl_jsonl_round_trip_and_report(tmp_path: Path) -> None:
    pairs = mixed_pairs()
    report = export_pairs(pairs, tmp_path / "dpo.jsonl", "trl-jsonl")
    assert report["written"] == 2 and report["skipped"] == {"tie": 1, "unlabeled": 2}
    assert report["conversational"] is False
    rows = [json.loads(line) for line in (tmp_path / "dpo.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rows[1] == {"prompt": "Two plus two?", "chosen": "Four.", "rejected": "Five.", "id": pairs[1].id}
    back = read_pairs(tmp_path / "dpo.jsonl")
    assert as_chosen_rejected(back) == as_chosen_rejected(pairs)
    assert all(p.preferred == "A" for p in back)


def test_conversational_export_uses_trl_message_form(tmp_path: Path) -> None:
    pairs = chat_pairs()
    report = export_pairs(pairs, tmp_path / "chat.jsonl", "trl-jsonl")
    assert report["conversational"] is True and report["written"] == 3
    rows = [json.loads(line) for line in (tmp_path / "chat.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rows[0]["prompt"] == CHAT and rows[0]["chosen"] == [{"role": "assistant", "content": "Apple."}]
    assert rows[1]["chosen"] == [{"role": "assistant", "content": "Paris."}]
    # A text prompt among chat prompts becomes one user turn, so the file is one Arrow schema.
    assert rows[2]["prompt"] == [{"role": "user", "content": "A plain-text prompt in a chat dataset."}]
    back = read_pairs(tmp_path / "chat.jsonl")
    assert as_chosen_rejected(back)[:2] == as_chosen_rejected(pairs)[:2]


def test_hh_fixture_round_trips_through_every_export_format(tmp_path: Path) -> None:
    import datasets
    import pyarrow.parquet as pq

    pairs = read_pairs(FIXTURES / "hh_rlhf.jsonl")
    export_pairs(pairs, tmp_path / "hh.jsonl", "trl-jsonl")
    export_pairs(pairs, tmp_path / "hh.parquet", "trl-parquet")
    export_pairs(pairs, tmp_path / "hh_ds", "hf-dataset")
    assert pq.read_schema(tmp_path / "hh.parquet").names == ["prompt", "chosen", "rejected", "id"]
    assert datasets.load_from_disk(str(tmp_path / "hh_ds")).column_names == ["prompt", "chosen", "rejected", "id"]
    for target in ("hh.jsonl", "hh.parquet", "hh_ds"):
        back = read_pairs(tmp_path / target)
        assert [(p.id, p.prompt, p.response_a, p.response_b, p.preferred) for p in back] == \
               [(p.id, p.prompt, p.response_a, p.response_b, p.preferred) for p in pairs], target


@pytest.mark.parametrize("make_pairs", [mixed_pairs, chat_pairs], ids=["plain", "conversational"])
def test_exported_jsonl_loads_with_datasets_and_trains_with_dpo(tmp_path: Path, make_pairs) -> None:
    """The real check: datasets.load_dataset reads the file and TRL's DPOTrainer tokenizes and steps on it."""
    import datasets
    from checkpoints import write_tiny_checkpoint  # tests/ is on sys.path under pytest
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer
    from trl.data_utils import is_conversational

    export_pairs(make_pairs(), tmp_path / "dpo.jsonl", "trl-jsonl")
    ds = datasets.load_dataset("json", data_files=str(tmp_path / "dpo.jsonl"), split="train")
    assert {"prompt", "chosen", "rejected"} <= set(ds.column_names)
    assert is_conversational(ds[0]) == (make_pairs is chat_pairs)

    ckpt = write_tiny_checkpoint("llama", tmp_path / "ckpt")
    args = DPOConfig(output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=2, report_to="none",
                     save_strategy="no", use_cpu=True, logging_steps=1)
    trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(ckpt), args=args, train_dataset=ds,
                         processing_class=AutoTokenizer.from_pretrained(ckpt))
    assert {"prompt_ids", "chosen_ids", "rejected_ids"} <= set(trainer.train_dataset.column_names)
    assert all(len(ids) > 0 for ids in trainer.train_dataset["chosen_ids"])
    result = trainer.train()
    assert result.global_step == 1 and result.training_loss > 0


@pytest.mark.parametrize("make_pairs", [mixed_pairs, chat_pairs], ids=["plain", "conversational"])
def test_parquet_and_hf_folder_exports_load_in_datasets_as_the_trained_jsonl(tmp_path: Path, make_pairs) -> None:
    """Checked with Hugging Face datasets, not our own reader: each loads to the very rows and
    features of the JSONL export, which the test above trains on with TRL's DPOTrainer."""
    import datasets
    from trl.data_utils import is_conversational

    for fmt, name in (("trl-jsonl", "dpo.jsonl"), ("trl-parquet", "dpo.parquet"), ("hf-dataset", "dpo_ds")):
        export_pairs(make_pairs(), tmp_path / name, fmt)
    jsonl = datasets.load_dataset("json", data_files=str(tmp_path / "dpo.jsonl"), split="train")
    parquet = datasets.load_dataset("parquet", data_files=str(tmp_path / "dpo.parquet"), split="train")
    folder = datasets.load_from_disk(str(tmp_path / "dpo_ds"))
    for ds in (parquet, folder):
        assert ds.column_names[:3] == ["prompt", "chosen", "rejected"]
        assert ds.to_list() == jsonl.to_list() and ds.features == jsonl.features
        assert all(is_conversational(row) == (make_pairs is chat_pairs) for row in ds)


def test_hf_dataset_export_replaces_an_existing_folder(tmp_path: Path) -> None:
    import datasets

    export_pairs(mixed_pairs(), tmp_path / "ds", "hf-dataset")
    export_pairs(chat_pairs(), tmp_path / "ds", "hf-dataset")
    ds = datasets.load_from_disk(str(tmp_path / "ds"))
    assert len(ds) == 3 and ds[0]["prompt"] == CHAT
    assert listing(tmp_path) == ["ds"]


def test_nothing_to_export_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no pair has a winner \(1 tie, 2 unlabeled\)"):
        export_pairs([p for p in mixed_pairs() if p.preferred not in ("A", "B")], tmp_path / "x.jsonl", "trl-jsonl")
    with pytest.raises(DataError, match="trl-jsonl, trl-parquet, hf-dataset"):
        export_pairs(mixed_pairs(), tmp_path / "x.jsonl", "dpo")
    assert listing(tmp_path) == []


@pytest.mark.parametrize("fmt,name", [("trl-jsonl", "out.jsonl"), ("trl-parquet", "out.parquet"), ("hf-dataset", "out_ds")])
def test_non_text_pair_is_refused_before_anything_is_written(tmp_path: Path, fmt: str, name: str) -> None:
    bad = [*mixed_pairs(), Pair("q", "a", b"bytes", id="bad", preferred="A")]
    with pytest.raises(DataError) as err:
        export_pairs(bad, tmp_path / "new" / name, fmt)
    assert err.value.field == "response_b" and "'bad'" in str(err.value)
    assert listing(tmp_path) == []


def test_failure_inside_the_write_leaves_nothing_and_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.jsonl"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half a file")
        raise RuntimeError("disk vanished")
    assert listing(tmp_path) == []  # neither the temp file nor the parent folder it created

    export_pairs(mixed_pairs(), target, "trl-jsonl")
    before = target.read_bytes()
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half a file")
        raise RuntimeError("disk vanished")
    assert listing(target.parent) == ["out.jsonl"] and target.read_bytes() == before

    folder = tmp_path / "ds"
    export_pairs(mixed_pairs(), folder, "hf-dataset")
    with pytest.raises(RuntimeError), atomic_path(folder) as tmp:
        tmp.mkdir()
        (tmp / "partial.arrow").write_bytes(b"...")
        raise RuntimeError("killed")
    assert listing(tmp_path) == ["ds", "sub"] and len(read_pairs(folder)) == 2


def test_rename_failure_is_a_data_error_and_cleans_up(tmp_path: Path) -> None:
    """Exporting a file onto an existing non-empty folder fails at the final rename."""
    (tmp_path / "taken.jsonl").mkdir()
    (tmp_path / "taken.jsonl" / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="could not be written"):
        export_pairs(mixed_pairs(), tmp_path / "taken.jsonl", "trl-jsonl")
    assert listing(tmp_path) == ["taken.jsonl"] and listing(tmp_path / "taken.jsonl") == ["keep.txt"]


def judgments_for(pairs: list[Pair]) -> list[Judgment]:
    return [
        Judgment(pairs[0].id, "ann1", Outcome.A, strength=2, aspects={"helpful": "A", "safe": "tie"}, rationale="clearer",
                 displayed_order="BA", started_at=100.0, submitted_at=112.5),
        Judgment(pairs[0].id, "ann2", Outcome.B, strength=1, rationale="shorter, \"quoted\", and\nmulti-line",
                 started_at=101.0, submitted_at=130.0),
        Judgment(pairs[1].id, "ann1", Outcome.TIE),
        Judgment(pairs[1].id, "ann2", Outcome.SKIP),
        Judgment(pairs[0].id, "ann1", Outcome.BOTH_BAD, displayed_order="AB", submitted_at=200.0),
    ]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_long_table_keeps_every_judgment(tmp_path: Path, suffix: str) -> None:
    import pandas as pd

    pairs = chat_pairs()
    judgments = judgments_for(pairs)
    n = export_long_table(judgments, pairs, tmp_path / f"long{suffix}")
    assert n == 5
    df = pd.read_csv(tmp_path / f"long{suffix}") if suffix == ".csv" else pd.read_parquet(tmp_path / f"long{suffix}")
    assert list(df.columns) == list(LONG_TABLE_COLUMNS) and len(df) == 5
    assert list(df["outcome"]) == ["A", "B", "tie", "skip", "both_bad"]
    assert list(df["annotator"]) == ["ann1", "ann2", "ann1", "ann2", "ann1"]
    first = df.iloc[0]
    assert first["pair_id"] == pairs[0].id and first["response_a"] == "Apple." and first["response_b"] == "A car."
    assert json.loads(first["aspects"]) == {"helpful": "A", "safe": "tie"}
    assert json.loads(first["prompt_json"]) == CHAT and first["prompt"] == "system: Be brief.\n\nuser: Name a fruit."
    assert first["displayed_order"] == "BA" and first["strength"] == 2
    assert (first["started_at"], first["submitted_at"]) == (100.0, 112.5)
    assert df.iloc[1]["rationale"] == "shorter, \"quoted\", and\nmulti-line"
    assert pd.isna(df.iloc[2]["strength"]) and pd.isna(df.iloc[2]["submitted_at"])
    # disagreement on pair 0 is visible row by row
    assert set(df[df["pair_id"] == pairs[0].id]["outcome"]) == {"A", "B", "both_bad"}


def test_long_table_unknown_pair_writes_nothing(tmp_path: Path) -> None:
    pairs = chat_pairs()
    judgments = [*judgments_for(pairs), Judgment("no-such-pair", "ann3", Outcome.A)]
    with pytest.raises(DataError, match="Judgment 6 .*'no-such-pair'"):
        export_long_table(judgments, pairs, tmp_path / "long.csv")
    with pytest.raises(DataError, match=r"\*\.csv or \*\.parquet"):
        export_long_table(judgments_for(pairs), pairs, tmp_path / "long.xlsx")
    assert listing(tmp_path) == []
