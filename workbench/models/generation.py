"""Text generation with chat templates, explicit sampling settings, seeds and streaming.

Batches are left-padded so every prompt ends at the same position; a seed makes a
sampled generation reproducible, which the steering and labeling views rely on.
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

from workbench.data.types import Prompt
from workbench.jobs.context import JobCancelled, cancel_requested
from workbench.jobs.options import SamplingOptions
from workbench.models.loading import LoadedModel


def to_messages(prompt: Prompt, system: str | None = None) -> list[dict[str, str]]:
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    if system and not (messages and messages[0]["role"] == "system"):
        messages = [{"role": "system", "content": system}, *messages]
    return messages


def render_prompt(tokenizer: Any, prompt: Prompt, system: str | None = None) -> str:
    """The exact text the model sees: its chat template if it has one, else the raw text."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(to_messages(prompt, system), tokenize=False, add_generation_prompt=True)
    text = prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)
    return f"{system}\n\n{text}" if system else text


def _encode(lm: LoadedModel, prompts: list[Prompt], system: str | None) -> dict[str, torch.Tensor]:
    tok = lm.tokenizer
    texts = [render_prompt(tok, p, system) for p in prompts]
    side = tok.padding_side
    tok.padding_side = "left"
    try:
        # The template already holds BOS/special tokens where the model expects them.
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=not getattr(tok, "chat_template", None))
    finally:
        tok.padding_side = side
    return {k: v.to(lm.device) for k, v in enc.items()}


def _seed(seed: int | None) -> None:
    if seed is not None:
        torch.manual_seed(seed)


class _JobCancel(StoppingCriteria):  # type: ignore[misc]
    """Stops every row at the next token once the job running in this process is cancelled."""

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kw: Any) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), cancel_requested(), dtype=torch.bool, device=input_ids.device)


def generate(lm: LoadedModel, prompts: list[Prompt], settings: SamplingOptions | None = None, system: str | None = None) -> list[str]:
    """Generate one response per prompt in a single batched call.

    Inside a job (``workbench.jobs.context.activate``) a cancel stops the batch at the next
    token and raises ``JobCancelled``: a batch of 8 × 128 tokens took minutes on a busy CPU
    before its job could notice, and its cut-off answers must never be kept as if complete.
    """
    settings = settings or SamplingOptions()
    enc = _encode(lm, prompts, system)
    _seed(settings.seed)
    with torch.inference_mode():
        out = lm.model.generate(**enc, **settings.generate_kwargs(), pad_token_id=lm.tokenizer.pad_token_id,
                                stopping_criteria=StoppingCriteriaList([_JobCancel()]))
    new_tokens = out[:, enc["input_ids"].shape[1]:]
    if cancel_requested():
        raise JobCancelled(f"while generating, after {new_tokens.shape[1]} of {settings.max_new_tokens} new tokens")
    return [t.strip() for t in lm.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]


@dataclass
class Streamed:
    """One state of a streamed answer: the text so far and how far it is, so a UI can show
    "37 / 128 tokens, ETA 29 s" instead of an open-ended wait."""

    text: str
    tokens: int
    max_new_tokens: int
    prompt_tokens: int
    elapsed_s: float
    first_token_s: float | None  # when the first new token came (the prompt was read by then)

    @property
    def eta_s(self) -> float | None:
        """Seconds until max_new_tokens at the decoding rate so far (an upper bound: the answer may end sooner)."""
        if self.first_token_s is None or self.tokens < 2 or self.elapsed_s <= self.first_token_s:
            return None
        rate = (self.tokens - 1) / (self.elapsed_s - self.first_token_s)
        return (self.max_new_tokens - self.tokens) / rate

    def note(self) -> str:
        """The progress line: tokens so far / max and the ETA, or that the prompt is being read."""
        if not self.tokens:
            return f"reading the prompt ({self.prompt_tokens} tokens), {self.elapsed_s:.0f} s"
        eta = self.eta_s
        return f"{self.tokens} / {self.max_new_tokens} tokens" + (f", ETA {eta:.0f} s" if eta is not None else "")


def stream(lm: LoadedModel, prompt: Prompt, settings: SamplingOptions | None = None, system: str | None = None) -> Iterator[Streamed]:
    """Yield the growing response as tokens arrive (for live UIs), with its token count and ETA."""
    settings = settings or SamplingOptions()
    enc = _encode(lm, [prompt], system)
    t0 = time.monotonic()
    counts: list[float] = []  # the time of every new token

    class Counting(TextIteratorStreamer):  # type: ignore[misc]
        def put(self, value: Any) -> None:
            if not (self.skip_prompt and self.next_tokens_are_prompt):
                counts.extend([time.monotonic() - t0] * int(value.numel()))
            super().put(value)

    streamer = Counting(lm.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=1.0)
    errors: list[BaseException] = []

    def run() -> None:
        _seed(settings.seed)
        try:
            with torch.inference_mode():
                lm.model.generate(**enc, **settings.generate_kwargs(), streamer=streamer, pad_token_id=lm.tokenizer.pad_token_id)
        except BaseException as exc:  # surfaced in the caller's thread below
            errors.append(exc)
            streamer.end()

    def state(text: str) -> Streamed:
        return Streamed(text, len(counts), settings.max_new_tokens, int(enc["input_ids"].shape[1]),
                        time.monotonic() - t0, counts[0] if counts else None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    text = ""
    while True:  # a 1 s timeout: the wait for the first token (reading the prompt) shows its seconds too
        try:
            piece = next(streamer)
        except StopIteration:
            break
        except queue.Empty:
            if not thread.is_alive() and errors:
                break
            yield state(text)
            continue
        text += piece
        yield state(text)
    thread.join()
    if errors:
        raise errors[0]
