"""Steered and unsteered generation in one batch, with common random numbers.

Every row of the batch is the same prompt with its own steering coefficients (row 0 is
usually the unsteered one). Rows are decoded together, one forward per step for all of
them, and at each step all rows share the same Gumbel noise: sampling is
``argmax(log p + g)``, so a row whose distribution does not change picks exactly the token
the unsteered row picks, and every difference between the outputs is caused by the
steering, not by the dice. The same seed gives the same outputs.

Each generated token comes with its log-probability under its own row's (steered) model,
for the token-level hover in the UI.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch

from workbench.data.types import Prompt
from workbench.errors import ConfigError
from workbench.jobs.options import SamplingOptions
from workbench.models.generation import render_prompt
from workbench.models.loading import LoadedModel
from workbench.steering.vectors import SteeringVector, steer


@dataclass
class DecodedRow:
    """One row's output so far: token ids, each token's text and log-probability."""

    coefficients: tuple[float, ...]
    token_ids: list[int] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    text: str = ""
    finished: bool = False

    @property
    def n_tokens(self) -> int:
        return len(self.token_ids)


def _processors(settings: SamplingOptions) -> list:
    # transformers: only in _processors()
    from transformers import RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    procs: list = []
    if settings.repetition_penalty != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(settings.repetition_penalty))
    if settings.do_sample:
        procs.append(TemperatureLogitsWarper(settings.temperature))
        if settings.top_k:
            procs.append(TopKLogitsWarper(settings.top_k))
        if settings.top_p < 1.0:
            procs.append(TopPLogitsWarper(settings.top_p))
    return procs


def _stop_ids(lm: LoadedModel) -> torch.Tensor:
    ids: set[int] = set()
    for source in (lm.tokenizer.eos_token_id, getattr(lm.model.generation_config, "eos_token_id", None)):
        if isinstance(source, int):
            ids.add(source)
        elif source:
            ids.update(int(i) for i in source)
    return torch.tensor(sorted(ids), dtype=torch.long, device=lm.device)


def decode_rows(
    lm: LoadedModel,
    prompt: Prompt,
    vectors: Sequence[SteeringVector],
    coefficients: Sequence[Sequence[float]],
    settings: SamplingOptions | None = None,
    *,
    system: str | None = None,
    every: int = 1,
) -> Iterator[list[DecodedRow]]:
    """Decode ``len(coefficients)`` rows of ``prompt``; row r uses ``coefficients[r][j]`` for ``vectors[j]``.

    Yields the rows every ``every`` steps and once at the end (the last yield is final).
    """
    settings = settings or SamplingOptions()
    coef = torch.tensor([list(map(float, row)) for row in coefficients], dtype=torch.float32)
    if coef.ndim != 2 or coef.shape[0] == 0 or coef.shape[1] != len(vectors):
        raise ConfigError(f"coefficients must be one row per output with {len(vectors)} number(s) each (one per vector); "
                          f"got shape {tuple(coef.shape)}.")
    n_rows = coef.shape[0]
    rows = [DecodedRow(coefficients=tuple(map(float, c))) for c in coef.tolist()]
    tok = lm.tokenizer
    text = render_prompt(tok, prompt, system)
    enc = tok([text], return_tensors="pt", add_special_tokens=not getattr(tok, "chat_template", None))
    input_ids = enc["input_ids"].to(lm.device).repeat(n_rows, 1)
    procs = _processors(settings)
    stop = _stop_ids(lm)
    gen = torch.Generator().manual_seed(settings.seed if settings.seed is not None else torch.seed())
    vocab = None
    done = torch.zeros(n_rows, dtype=torch.bool, device=lm.device)
    generated = torch.empty(n_rows, 0, dtype=torch.long, device=lm.device)
    past = None
    step_ids = input_ids
    steering = [(v, coef[:, j]) for j, v in enumerate(vectors)]
    with torch.inference_mode():
        for step in range(settings.max_new_tokens):
            # Hooks live for one forward only, so nothing stays steered while the caller holds a yielded row.
            with steer(lm, steering):
                out = lm.model(input_ids=step_ids, cache=past, use_cache=True, logits_to_keep=1)
            past = out.cache
            logits = out.logits[:, -1, :].float()
            logprobs = torch.log_softmax(logits, dim=-1)
            scores = logits
            context = torch.cat([input_ids, generated], dim=1)
            for proc in procs:
                scores = proc(context, scores)
            if settings.do_sample:
                vocab = vocab or scores.shape[-1]
                uniform = torch.rand(vocab, generator=gen).clamp_(1e-20, 1.0).to(scores.device)
                gumbel = -torch.log(-torch.log(uniform))  # one draw shared by every row
                next_ids = (torch.log_softmax(scores, dim=-1) + gumbel).argmax(-1)
            else:
                next_ids = scores.argmax(-1)
            chosen_lp = logprobs.gather(1, next_ids[:, None])[:, 0]
            next_ids = torch.where(done, stop[0] if len(stop) else next_ids, next_ids)
            generated = torch.cat([generated, next_ids[:, None]], dim=1)
            _record(rows, tok, next_ids.tolist(), chosen_lp.tolist(), done.tolist(), stop)
            done |= torch.isin(next_ids, stop)
            step_ids = next_ids[:, None]
            finished = bool(done.all())
            if finished or step + 1 == settings.max_new_tokens:
                break
            if (step + 1) % every == 0:
                yield rows
    for row, flag in zip(rows, done.tolist(), strict=True):
        row.finished = flag
    yield rows


def _record(rows: list[DecodedRow], tok, ids: list[int], lps: list[float], done: list[bool], stop: torch.Tensor) -> None:
    stop_set = set(stop.tolist())
    for row, token_id, lp, was_done in zip(rows, ids, lps, done, strict=True):
        if was_done or token_id in stop_set:
            continue
        row.token_ids.append(token_id)
        row.tokens.append(tok.decode([token_id]))
        row.logprobs.append(lp)
        row.text = tok.decode(row.token_ids, skip_special_tokens=True).strip()


def generate_rows(lm: LoadedModel, prompt: Prompt, vectors: Sequence[SteeringVector], coefficients: Sequence[Sequence[float]],
                  settings: SamplingOptions | None = None, *, system: str | None = None) -> list[DecodedRow]:
    """The final rows of ``decode_rows`` (no streaming)."""
    *_, final = decode_rows(lm, prompt, vectors, coefficients, settings, system=system, every=1 << 30)
    return final


def side_by_side(lm: LoadedModel, prompt: Prompt, steering: Sequence[tuple[SteeringVector, float]],
                 settings: SamplingOptions | None = None, *, system: str | None = None,
                 every: int = 1) -> Iterator[tuple[DecodedRow, DecodedRow]]:
    """Stream (unsteered, steered) for the same prompt and seed; one batched forward per token."""
    vectors = [v for v, _ in steering]
    coefficients = [[0.0] * len(vectors), [float(c) for _, c in steering]]
    for rows in decode_rows(lm, prompt, vectors, coefficients, settings, system=system, every=every):
        yield rows[0], rows[1]
