"""The Models & data chat with a second model: both answer the same message with the same
settings, one after the other, each pane showing a note until its first words arrive.

Two tiny random checkpoints of different families; the second has no chat template, so each
model renders the conversation its own way.
"""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from checkpoints import write_tiny_checkpoint

from plugins.home import actions
from workbench.context import AppContext
from workbench.errors import ModelError
from workbench.jobs.options import SamplingOptions
from workbench.models.embedded import EMBEDDER_NAME
from workbench.models.generation import render_prompt, stream
from workbench.settings import Settings

QUESTION = [{"role": "user", "content": "Which answer is more concise?"}]
SAMPLED = SamplingOptions(max_new_tokens=12, temperature=0.7, seed=3)


def write_plain_gpt2(out: Path) -> Path:
    """A tiny GPT-2 without a chat template (the raw text is its prompt)."""
    write_tiny_checkpoint("gpt2", out, seed=1)
    config = json.loads((out / "tokenizer_config.json").read_text(encoding="utf-8"))
    config.pop("chat_template", None)
    (out / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    (out / "chat_template.jinja").unlink(missing_ok=True)
    return out


@pytest.fixture(scope="module")
def ctx(tmp_path_factory) -> AppContext:
    home = tmp_path_factory.mktemp("home-chat") / "home"
    write_tiny_checkpoint("llama", home / "models" / "tiny-llama")
    write_plain_gpt2(home / "models" / "tiny-gpt2")
    ctx = AppContext(Settings(home=home))
    ctx.activate("tiny-llama")
    return ctx


def _alone(lm, conversation, settings) -> str:
    """The model's whole answer when it is the only one asked (``stream`` yields the growing text)."""
    parts = list(stream(lm, conversation, settings))
    return parts[-1].text if parts else ""


def test_two_models_answer_in_turn_with_a_note_in_every_waiting_pane(ctx: AppContext) -> None:
    models = actions.chat_models(ctx, "tiny-gpt2")
    assert [lm.name for lm in models] == ["tiny-llama", "tiny-gpt2"]
    assert render_prompt(models[0].tokenizer, QUESTION) != render_prompt(models[1].tokenizer, QUESTION)  # own templates
    updates = [copy.deepcopy(u) for u in actions.answer(models, [QUESTION, QUESTION], SAMPLED)]

    first = updates[0]
    assert [p[-1]["content"] for p in first.panes] == [actions.WORKING, actions.queued_note("tiny-llama")]
    assert first.status == actions.WORKING and all(p[:-1] == QUESTION for p in first.panes)
    notes = {actions.WORKING, actions.queued_note("tiny-llama")}
    answered_b = False
    for update in updates:
        a, b = (p[-1]["content"] for p in update.panes)
        answered_b = answered_b or b not in notes
        if answered_b:  # in turn: the first answer is complete before the second starts
            assert a == updates[-1].panes[0][-1]["content"]
        else:
            assert b in notes  # never an empty pane while it waits
        assert update is updates[-1] or update.status.startswith("⏳")  # how far it is, until the turn ends
    assert any(u.panes[1][-1]["content"] == actions.WORKING and u.panes[0][-1]["content"] not in notes for u in updates)
    # Each model's progress is its tokens so far out of the maximum, with an ETA once it decodes.
    for name in ("tiny-llama", "tiny-gpt2"):
        assert any(re.search(rf"{name}: \d+ / {SAMPLED.max_new_tokens} tokens, ETA \d+ s", u.status) for u in updates), name
    # Same history, seed and settings: each answer is what that model gives alone.
    final = updates[-1]
    assert final.status == ""
    assert [p[-1]["content"] for p in final.panes] == [_alone(lm, QUESTION, SAMPLED) for lm in models]


def test_a_model_compared_with_itself_gives_the_same_seeded_answer(ctx: AppContext) -> None:
    models = actions.chat_models(ctx, "tiny-llama")
    *_, final = actions.answer(models, [QUESTION, QUESTION], SAMPLED)
    a, b = (p[-1]["content"] for p in final.panes)
    assert a == b and a == _alone(models[0], QUESTION, SAMPLED)


def test_without_a_second_model_one_pane_answers_as_before(ctx: AppContext) -> None:
    models = actions.chat_models(ctx, "")
    updates = [copy.deepcopy(u) for u in actions.answer(models, [QUESTION], SAMPLED)]
    assert len(models) == 1 and all(len(u.panes) == 1 for u in updates)
    assert updates[0].panes[0][-1]["content"] == actions.WORKING
    assert updates[-1].panes[0][-1]["content"] == _alone(models[0], QUESTION, SAMPLED) and updates[-1].status == ""


def test_a_second_model_that_cannot_chat_is_named(ctx: AppContext) -> None:
    with pytest.raises(ModelError, match=f"{EMBEDDER_NAME} is an encoder") as err:
        actions.chat_models(ctx, EMBEDDER_NAME)
    assert "Compare with" in (err.value.hint or "")


def test_only_offered_models_can_be_compared(ctx: AppContext, tmp_path: Path) -> None:
    outside = write_tiny_checkpoint("llama", tmp_path / "elsewhere")
    loaded = set(ctx.models)
    with pytest.raises(ModelError, match="not one of the models this page offers"):
        actions.chat_models(ctx, str(outside))
    assert set(ctx.models) == loaded  # refused before anything was loaded


def test_chat_without_a_loaded_model_says_so(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="No model is loaded"):
        actions.chat_models(AppContext(Settings(home=tmp_path / "home")), "tiny-gpt2")



def test_a_failing_model_ends_the_turn_with_its_error_and_no_stuck_note(ctx: AppContext) -> None:
    """A chat template that refuses the conversation (as some do for a system turn) fails inside the second turn."""
    broken = write_tiny_checkpoint("llama", ctx.settings.home / "models" / "tiny-refusing")
    config = json.loads((broken / "tokenizer_config.json").read_text(encoding="utf-8"))
    config["chat_template"] = "{{ raise_exception('This template refuses every conversation.') }}"
    (broken / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    (broken / "chat_template.jinja").unlink(missing_ok=True)
    models = actions.chat_models(ctx, "tiny-refusing")
    *_, final = actions.answer(models, [QUESTION, QUESTION], SAMPLED)
    assert final.status.startswith("**Error:**") and "refuses every conversation" in final.status
    assert final.panes[1] == QUESTION  # the question stays, the waiting/working note is gone
    assert final.panes[0][-1]["content"] == _alone(models[0], QUESTION, SAMPLED)  # the first answer is kept
