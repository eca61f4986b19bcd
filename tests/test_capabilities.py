"""Capabilities are declared and checked: catalog entries, the shared model/dataset choices, the shell."""
from __future__ import annotations

import json
import shutil

import pytest
from checkpoints import write_tiny_lora

from workbench.app.shell import unmet_requirements
from workbench.app.ui import dataset_choices, model_choices
from workbench.context import AppContext
from workbench.data.types import Pair
from workbench.models.catalog import scan_catalog
from workbench.models.embedded import DEMO_MODEL_NAME, EMBEDDER_NAME
from workbench.plugin_types import is_compatible
from workbench.settings import Settings


def test_is_compatible_says_what_is_missing():
    assert is_compatible(["causal_lm"], {"causal_lm", "trainable"}) == (True, "")
    ok, why = is_compatible(["causal_lm", "trainable"], {"causal_lm", "peft"})
    assert not ok and why == "needs a full Hugging Face decoder folder that a fine-tune can start from"
    assert is_compatible(["causal_lm|encoder"], {"encoder"})[0]
    assert not is_compatible(["causal_lm|encoder"], {"pairs"})[0]
    with pytest.raises(ValueError, match="Unknown capability 'causal'"):
        is_compatible(["causal"], {"causal_lm"})


@pytest.fixture
def home_with_models(tmp_path, tiny_checkpoint):
    root = tmp_path / "roots"
    shutil.copytree(tiny_checkpoint("llama"), root / "llama-tiny")
    write_tiny_lora(tiny_checkpoint("llama"), root / "lora-tiny")
    odd = shutil.copytree(tiny_checkpoint("llama"), root / "odd-tiny")
    config = json.loads((odd / "config.json").read_text())
    (odd / "config.json").write_text(json.dumps({**config, "model_type": "no_such_family"}))
    return Settings(home=tmp_path / "home", model_roots=[root])


def test_catalog_entries_carry_family_format_status_and_capabilities(home_with_models):
    entries = {e.name: e for e in scan_catalog(home_with_models)}
    llama, bert, lora, odd = (entries[n] for n in ("llama-tiny", EMBEDDER_NAME, "lora-tiny", "odd-tiny"))
    assert (llama.family, llama.format, llama.status) == ("llama", "hf", "ok")
    assert llama.capabilities >= {"causal_lm", "trainable"} and "encoder" not in llama.capabilities
    assert bert.family == "bert" and bert.capabilities == {"encoder"}
    assert lora.format == "peft" and lora.family is None and lora.capabilities >= {"causal_lm", "peft"}
    assert "trainable" not in lora.capabilities
    assert odd.status == "unsupported" and odd.family is None and "no_such_family" in odd.error
    assert odd.to_row()["family"] == "?"


def test_model_choices_offer_only_what_fits(home_with_models):
    ctx = AppContext(home_with_models)
    trainable = model_choices(ctx, ["trainable"])
    assert trainable[0] == DEMO_MODEL_NAME and "llama-tiny" in trainable
    assert not {"lora-tiny", EMBEDDER_NAME, "odd-tiny"} & set(trainable)
    lens = model_choices(ctx, ["causal_lm"])
    assert {"llama-tiny", "lora-tiny", DEMO_MODEL_NAME} <= set(lens) and EMBEDDER_NAME not in lens
    assert model_choices(ctx, ["encoder"]) == [EMBEDDER_NAME]
    assert "odd-tiny" not in model_choices(ctx)


def test_datasets_are_offered_by_what_they_hold(tmp_path):
    ctx = AppContext(Settings(home=tmp_path / "home"))
    ctx.store.import_pairs("unlabeled", [Pair("q", "a", "b")], source="t", format="unlabeled")
    ctx.store.import_pairs("labeled", [Pair("q", "a", "b", preferred="A")], source="t", format="trl")
    assert dataset_choices(ctx) == ["unlabeled", "labeled"]
    assert dataset_choices(ctx, ["labeled"]) == ["labeled"]


def test_shell_says_why_a_tab_cannot_run(tmp_path):
    ctx = AppContext(Settings(home=tmp_path / "home"))
    assert unmet_requirements(ctx, ["causal_lm"]) is None
    assert unmet_requirements(ctx, ["pairs"]) is None  # the demo dataset is imported on first use
    why = unmet_requirements(ctx, ["labeled"])
    assert why is not None and "recorded winner" in why and "Models & data" in why
    ctx.store.import_pairs("labeled", [Pair("q", "a", "b", preferred="A")], source="t", format="trl")
    assert unmet_requirements(ctx, ["labeled"]) is None


def test_builders_named_as_strings_import_only_when_built():
    import sys

    from workbench.plugin_types import PanelView, lazy

    sys.modules.pop("plugins.logit_lens.figures", None)
    view = PanelView("x", "X", "plugins.logit_lens.figures:figure_bytes")
    assert view.build.__module__ == "plugins.logit_lens.figures" and "plugins.logit_lens.figures" not in sys.modules
    with pytest.raises(ValueError, match="module:function"):
        lazy("plugins.relreps.view")
