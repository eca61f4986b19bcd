"""The Import form's "Keep anyway" choices reach the reader: records refused as likely mistakes
(here: identical responses) are kept only when that kind is ticked."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from plugins.home import actions
from workbench.app.ui import dataset_choices
from workbench.context import AppContext
from workbench.errors import DataError
from workbench.settings import Settings


def test_keep_anyway_passes_allow_to_the_import(tmp_path: Path) -> None:
    ctx = AppContext(Settings(home=tmp_path / "home"))
    data = ctx.settings.home / "data"
    data.mkdir(parents=True, exist_ok=True)
    rows = [{"prompt": "q1", "chosen": "yes", "rejected": "no"}, {"prompt": "q2", "chosen": "same", "rejected": "same"}]
    (data / "pairs.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(DataError, match="identical"):
        actions.import_dataset(ctx, upload=None, path=str(data / "pairs.jsonl"), name="p", format="auto", replace=False)
    assert "p" not in dataset_choices(ctx)
    stored, message = actions.import_dataset(ctx, upload=None, path=str(data / "pairs.jsonl"), name="p", format="auto",
                                             replace=False, allow=["identical"])
    assert stored == "p" and ctx.store.count_pairs("p") == 2 and "**2** pairs" in message
