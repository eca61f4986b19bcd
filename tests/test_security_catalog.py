"""One bad checkpoint must not break the catalog (issue 16 §4), and bad configs are clear errors.

Every hostile checkpoint is a real folder next to a real tiny llama under one model root:
a safetensors header length of 2^40, a header or config that is a JSON list, a safetensors
that is a link to a text file, a config that is a link to /dev/zero, ``hidden_size: "sixteen"``.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.context import AppContext
from workbench.errors import ModelError
from workbench.models.catalog import scan_roots
from workbench.models.loading import load_model
from workbench.settings import Settings


def _copy(good: Path, dest: Path) -> Path:
    return shutil.copytree(good, dest, symlinks=True)


def _edit_config(folder: Path, edit) -> Path:
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(edit(config)))
    return folder


def _header_file(path: Path, header: bytes, declared: int | None = None) -> None:
    path.write_bytes(struct.pack("<Q", len(header) if declared is None else declared) + header + b"\0" * 64)


@pytest.fixture(scope="module")
def model_root(tiny_checkpoint, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("model-root")
    good = _copy(tiny_checkpoint("llama"), root / "good")
    _header_file(_copy(good, root / "huge-header") / "model.safetensors", b"{}", declared=2**40)
    _header_file(_copy(good, root / "list-header") / "model.safetensors", b"[1, 2, 3]")
    text = root / "notes.txt"
    text.write_text("These are my notes, not weights.\n" * 100)
    linked = _copy(good, root / "linked-to-text")
    (linked / "model.safetensors").unlink()
    (linked / "model.safetensors").symlink_to(text)
    _edit_config(_copy(good, root / "list-config"), lambda c: [c])
    _edit_config(_copy(good, root / "sixteen"), lambda c: {**c, "hidden_size": "sixteen"})
    no_tokenizer = _copy(good, root / "no-tokenizer")
    for f in no_tokenizer.iterdir():
        if f.name.startswith(("tokenizer", "chat_template")):
            f.unlink()
    zero = _copy(good, root / "zero-config")
    (zero / "config.json").unlink()
    (zero / "config.json").symlink_to("/dev/zero")
    return root


BROKEN = {
    "huge-header": "declares a 1,099,511,627,776-byte header",
    "list-header": "the safetensors header is a JSON list",
    "linked-to-text": "not a valid safetensors file",
    "list-config": "config.json holds a JSON list, not an object",
    "sixteen": "config.json, field 'hidden_size': must be a whole number above zero, got 'sixteen'",
    "zero-config": "config.json is not a regular file",
    "no-tokenizer": "has no tokenizer files",
}


def test_catalog_lists_bad_checkpoints_as_broken_and_keeps_the_good_one(model_root, tiny_checkpoint) -> None:
    entries = {e.name: e for e in scan_roots([model_root])}
    assert set(entries) == {"good", *BROKEN}
    good = entries["good"]
    assert good.status == "ok" and good.error is None and good.family == "llama" and good.n_params > 0
    assert "causal_lm" in good.capabilities
    for name, reason in BROKEN.items():
        entry = entries[name]
        assert entry.status == "broken" and entry.format == "hf", name
        assert reason in entry.error and str(model_root / name) in entry.error, (name, entry.error)
        assert "\n" not in entry.error


def test_workbench_models_lists_them_all_and_a_valid_model_still_loads(model_root, tmp_path) -> None:
    env = {**os.environ, "WORKBENCH_MODEL_ROOTS": str(model_root), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "workbench.cli", "models", "--json", "--home", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["good"]["status"] == "ok"
    assert {name: rows[name]["status"] for name in BROKEN} == dict.fromkeys(BROKEN, "broken")
    ctx = AppContext(Settings(home=tmp_path, model_roots=[model_root], device="cpu"))
    lm = ctx.activate("good")  # what `serve --model good` does
    assert lm.adapter.family == "llama" and lm.capabilities >= {"causal_lm", "trainable", "chat"}


def test_a_broken_checkpoint_fails_to_load_with_a_model_error(model_root) -> None:
    for name in ("list-config", "sixteen", "zero-config", "huge-header"):
        with pytest.raises(ModelError) as err:
            load_model(model_root / name)
        assert str(model_root / name) in str(err.value), name


def test_bad_configs_name_the_file_and_the_field(tiny_checkpoint, tmp_path) -> None:
    good = tiny_checkpoint("llama")
    cases = {
        "list": (lambda c: [c], "holds a JSON list, not an object"),
        "banana": (lambda c: {**c, "model_type": "banana"}, "field 'model_type': unsupported architecture 'banana'"),
        "no-type": (lambda c: {k: v for k, v in c.items() if k != "model_type"}, "field 'model_type': missing"),
        "sixteen": (lambda c: {**c, "hidden_size": "sixteen"}, "field 'hidden_size': must be a whole number above zero"),
        "layers": (lambda c: {**c, "num_hidden_layers": True}, "field 'num_hidden_layers'"),
    }
    for name, (edit, expected) in cases.items():
        _edit_config(_copy(good, tmp_path / name), edit)
        with pytest.raises(ModelError) as err:
            load_model(tmp_path / name)
        assert str(err.value).startswith(str(tmp_path / name / "config.json")) and expected in str(err.value), (name, str(err.value))


def test_missing_tokenizer_is_a_model_error_before_the_weights_load(tiny_checkpoint, tmp_path) -> None:
    folder = _copy(tiny_checkpoint("llama"), tmp_path / "no-tokenizer")
    for f in folder.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "chat_template")):
            f.unlink()
    with pytest.raises(ModelError) as err:
        load_model(folder)
    assert str(err.value).startswith(f"{folder} has no tokenizer files (none of tokenizer.json")
