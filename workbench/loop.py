"""Back into blind labeling: a finished DPO run's base and tuned model, or one model unsteered and
steered, answer prompts that trained nothing.

One action (``start_blind_session``; ``workbench label from-run``; a button in the Fine-tune
tab) builds a pair-generation job (``generate-pairs``, the one way pairs are made)
whose two sources are the run's base model and the run's output (``run:<id>`` in the model
catalog), on held-out prompts: the source session's prompts that trained nothing, or a
prompt file. ``start_steering_blind_session`` (``workbench steer blind``; "Blind-test this
setting" in the Steering tab) does the same for a steering setting: sources ``unsteered`` and
``steered`` (saved vectors at chosen coefficients), on a prompt list or the prompts of a session
that fitted none of the vectors. The job opens a blind session on the pairs; its statistics
(the verdict of ``workbench.labeling.verdict``) then answer "did it win?" with Bradley–Terry,
the raw and the length-controlled win rate of ``tuned`` over ``base`` (``steered`` over
``unsteered``): the config records that side as ``candidate``, so the verdict is about it even
when it is rated lower.
"""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workbench.data.types import prompt_text
from workbench.errors import ConfigError, DataError
from workbench.jobs import JobManager, Run
from workbench.jobs.options import SamplingOptions
from workbench.labeling.generate import GENERATE_PAIRS, GeneratePairsConfig, PairSource, SteeringSetting
from workbench.settings import Settings
from workbench.store import Store
from workbench.training.pairs import frozen_session_split

BASE, TUNED = "base", "tuned"  # the two sources' names in a run's blind session
UNSTEERED, STEERED = "unsteered", "steered"  # ... and in a steering setting's
MAX_PROMPTS = 10_000  # a prompt file longer than this is refused, not truncated
MAX_PROMPT_CHARS = 20_000
BLIND_BATCH = 16  # a blind session's prompts answered per batch: 10 prompts in one batch, not 8 + 2 (half the decoding steps)
BLIND_MAX_NEW_TOKENS = 128  # tokens per blind answer (the CLI's --max-new-tokens default too): enough for a paragraph to judge


def finished_dpo_run(manager: JobManager, run_id: str) -> Run:
    """The run, or a ConfigError saying why it cannot be labeled against its base yet."""
    run = manager.get(run_id)
    m = run.manifest
    if m.type != "dpo":
        raise ConfigError(f"Run {m.id} is a {m.type} run; a blind base-vs-tuned session needs a DPO run (a model that writes answers).",
                          hint="Pick a finished DPO run (`workbench runs list`).")
    if m.status != "finished":
        p = run.progress()
        where = f" (step {p['step']} of {p['total']})" if p.get("total") else ""
        raise ConfigError(f"Run {m.id} is {m.status}{where}; only a finished run has a tuned model to compare.",
                          hint="Wait until it finishes (`workbench runs follow`)" if m.status in ("queued", "running")
                          else "Resume it (`workbench runs resume`) or pick a finished run.")
    return run


def read_prompt_file(path: Path) -> list[str]:
    """Prompts from a text file (one per line) or a JSONL file (a ``prompt`` per line); blank lines skipped.

    Read through the data readers' opener, like every user file: a named pipe, a device or a
    folder is refused at once (a FIFO would hang the command), and non-UTF-8 text is named.
    """
    from workbench.data.readers import read_user_text  # the one safe way to read a user's file

    prompts = []
    for line_no, line in enumerate(read_user_text(path).split("\n"), 1):
        if not line.strip():
            continue
        if len(prompts) >= MAX_PROMPTS:
            raise DataError(f"more than {MAX_PROMPTS} prompts.", path=path, line=line_no, hint="Split the file or pass --n.")
        text = line.removesuffix("\r")
        if path.suffix == ".jsonl":
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"not valid JSON ({err.msg}).", path=path, line=line_no) from None
            if not isinstance(row, dict) or not isinstance(row.get("prompt"), str) or not row["prompt"].strip():
                raise DataError("needs a non-empty text 'prompt'.", path=path, line=line_no, field="prompt")
            text = row["prompt"]
        if len(text) > MAX_PROMPT_CHARS:
            raise DataError(f"a prompt of {len(text)} characters (at most {MAX_PROMPT_CHARS}).", path=path, line=line_no)
        prompts.append(text)
    if not prompts:
        raise DataError("has no prompts.", path=path, hint="One prompt per line (or a JSONL file with a 'prompt' field).")
    return prompts


def untrained_prompts(manager: JobManager, run: Run) -> list[str]:
    """The source session's prompts that trained nothing: held out, or with no usable vote."""
    from workbench.labeling.sessions import LabelingStore  # 0.9 s (scipy): not needed to build the CLI

    frozen = frozen_session_split(run.dir)
    if frozen is None:
        raise ConfigError(f"Run {run.id} trained on a dataset, not a labeling session, so no prompts are known to be held out.",
                          hint="Pass a prompt file (--prompts).")
    trained = {p.prompt_text for p in frozen.train}
    with Store(manager.settings.store_target) as store:
        session_prompts = [prompt_text(p.prompt) for p in LabelingStore(store).pairs(frozen.record["session"])]
    prompts = [p for p in dict.fromkeys(session_prompts) if p not in trained]
    if not prompts:
        raise DataError(f"Every prompt of session '{frozen.record['session']}' trained run {run.id}; none is left to test on.",
                        hint="Pass a prompt file (--prompts) with new prompts.")
    return prompts


def blind_session_config(manager: JobManager, run_id: str, *, prompts: list[str] | None = None, n: int | None = None,
                         session: str | None = None, max_new_tokens: int = BLIND_MAX_NEW_TOKENS, batch_size: int = BLIND_BATCH,
                         temperature: float | None = None) -> GeneratePairsConfig:
    """The pair-generation config: base vs tuned, greedy (sampled at ``temperature`` if given), on held-out
    prompts (or ``prompts``), the first ``n``."""
    run = finished_dpo_run(manager, run_id)
    chosen = _first(prompts if prompts is not None else untrained_prompts(manager, run), n)
    session = session or f"{run.id}-blind"
    return GeneratePairsConfig(dataset=session, prompts=chosen, session=session, batch_size=batch_size, candidate=TUNED, sources=[
        PairSource(name=BASE, model=run.config["model"], sampling=_sampling(max_new_tokens, temperature, 0)),
        PairSource(name=TUNED, model=f"run:{run.id}", sampling=_sampling(max_new_tokens, temperature, 1))])


def start_blind_session(manager: JobManager, run_id: str, **kw: Any) -> Run:
    """Start the job that makes the blind base-vs-tuned session (see ``blind_session_config``)."""
    return manager.submit(GENERATE_PAIRS.name, blind_session_config(manager, run_id, **kw))


def _sampling(max_new_tokens: int, temperature: float | None = None, seed: int = 0) -> SamplingOptions:
    """Greedy, or sampled at ``temperature`` with a seed per source: greedy decoding (or one seed) of
    two near-identical models repeats the same answers, which no vote can tell apart."""
    if temperature is None:
        return SamplingOptions(do_sample=False, max_new_tokens=max_new_tokens)
    if not temperature > 0:
        raise ConfigError(f"--temperature must be above 0, got {temperature}.", hint="Leave it out for greedy decoding.")
    return SamplingOptions(do_sample=True, temperature=float(temperature), max_new_tokens=max_new_tokens, seed=seed)


def _first(prompts: list[str], n: int | None) -> list[str]:
    if n is not None and n < 1:
        raise ConfigError(f"--n must be at least 1, got {n}.")
    return prompts[:n]


def prompts_that_fitted(settings: Settings, vectors: Sequence[Any]) -> set[str]:
    """Prompts the vectors were fitted on, as far as their records tell: the A/B-voted prompts of the
    session a vector came from (``info.session``), every prompt of the dataset it came from (``info.dataset``)."""
    from workbench.labeling.sessions import LabelingStore  # 0.9 s (scipy): not needed to build the CLI
    from workbench.preference.votes import prompt_texts, votes_from_judgments

    out: set[str] = set()
    with Store(settings.store_target) as store:
        labeling, datasets = LabelingStore(store), {d["name"] for d in store.list_datasets()}
        sessions = {i.name for i in labeling.list_sessions()}
        for v in vectors:
            record = fitted_on(v)
            name = record.get("session")
            if name in sessions:
                votes = votes_from_judgments(name, labeling.pairs(name), labeling.judgments(name))
                out.update(prompt_texts(votes.votes))
            if record.get("dataset") in datasets:
                out.update(prompt_text(p.prompt) for p in store.get_pairs(record["dataset"]))
    return out


def fitted_on(fitted: Any) -> dict[str, Any]:
    """What a steering vector (``info``) or a reward model (``source``) records about the data it was fitted on."""
    return getattr(fitted, "info", None) or getattr(fitted, "source", None) or {}


def unfitted_session_prompts(settings: Settings, session: str, vectors: Sequence[Any]) -> list[str]:
    """A session's prompts that fitted none of ``vectors``, in session order (an unknown session is a ``NotFound``)."""
    from workbench.labeling.sessions import LabelingStore  # 0.9 s (scipy): not needed to build the CLI

    with Store(settings.store_target) as store:
        session_prompts = [prompt_text(p.prompt) for p in LabelingStore(store).pairs(session)]
    fitted = prompts_that_fitted(settings, vectors)
    prompts = [p for p in dict.fromkeys(session_prompts) if p not in fitted]
    if not prompts:
        what = "steering vector(s)" if all(hasattr(v, "info") for v in vectors) else "reward model"
        raise DataError(f"Every prompt of session '{session}' fitted the {what} "
                        f"{', '.join(v.name for v in vectors)}; none is left to test on.",
                        hint="Pick another session, or give prompts of your own (--prompts).")
    return prompts


def steering_blind_config(settings: Settings, model: str, steering: Sequence[tuple[str, float]], *, prompts: list[str] | None = None,
                          from_session: str | None = None, n: int | None = None, session: str | None = None,
                          max_new_tokens: int = BLIND_MAX_NEW_TOKENS, batch_size: int = BLIND_BATCH, temperature: float | None = None) -> GeneratePairsConfig:
    """The pair-generation config: ``model`` unsteered vs steered by ``steering`` ((vector name, coefficient), …),
    greedy (sampled at ``temperature`` if given), on ``prompts`` or the prompts of ``from_session`` that fitted none of the vectors, the first ``n``."""
    from workbench.steering.library import load_vector  # imports torch: not needed to build the CLI

    active = [(name, float(c)) for name, c in steering if name and c]
    if not active:
        raise ConfigError("No vector steers at a non-zero coefficient, so 'steered' would be the unsteered model: the session "
                          "would compare one source with itself.",
                          hint="Pick at least one vector and set its coefficient to something other than 0.")
    vectors = [load_vector(settings, name) for name, _ in active]
    if (prompts is None) == (from_session is None):
        raise ConfigError("Give the held-out prompts either as a list (a prompt file) or as a session whose prompts to use, not "
                          + ("both." if prompts is not None else "neither."),
                          hint="--prompts FILE, or --from-session NAME (its prompts that fitted none of the vectors).")
    chosen = _first(prompts if prompts is not None else unfitted_session_prompts(settings, str(from_session), vectors), n)
    session = session or f"steered-blind-{time.strftime('%Y%m%d-%H%M%S')}"
    return GeneratePairsConfig(dataset=session, prompts=chosen, session=session, batch_size=batch_size, candidate=STEERED, sources=[
        PairSource(name=UNSTEERED, model=model, sampling=_sampling(max_new_tokens, temperature, 0)),
        PairSource(name=STEERED, model=model, sampling=_sampling(max_new_tokens, temperature, 1),
                   steering=[SteeringSetting(vector=name, coefficient=c) for name, c in active])])


def start_steering_blind_session(manager: JobManager, model: str, steering: Sequence[tuple[str, float]], **kw: Any) -> Run:
    """Start the job that makes the blind unsteered-vs-steered session (see ``steering_blind_config``)."""
    return manager.submit(GENERATE_PAIRS.name, steering_blind_config(manager.settings, model, steering, **kw))


def held_out_note(settings: Settings, from_session: str | None, vector_names: Sequence[str], used: int, n: int | None) -> str:
    """How many prompts a blind steering test got and why not more: the session's prompts that
    fitted a vector are left out (a test on them would reward memorising the votes), then ``n`` cuts."""
    if not from_session:
        return f"{used} prompt(s) of your own."
    from workbench.labeling.sessions import LabelingStore  # 0.9 s (scipy): not needed to build the CLI
    from workbench.steering.library import load_vector  # imports torch: not needed to build the CLI

    with Store(settings.store_target) as store:
        total = len(dict.fromkeys(prompt_text(p.prompt) for p in LabelingStore(store).pairs(from_session)))
    unfitted = len(unfitted_session_prompts(settings, from_session, [load_vector(settings, v) for v in vector_names]))
    text = (f"{used} of the {total} prompt(s) of session '{from_session}': {total - unfitted} fitted the vector(s) "
            "(their votes made it) and are left out, so steered is judged on prompts it never saw")
    return text + (f"; {unfitted - used} more left out by the prompt limit ({n})." if unfitted > used else ".")


def dpa_system(reward_model: Any) -> str:
    """The DPA system prompt of a reward model fitted on a session's votes: its DPA direction over the
    aspect heads, or the overall head alone when the votes judged no aspect (no direction to fit)."""
    from workbench.steering.dpa import dpa_system_prompt  # numpy only, but keeps the CLI's import list short

    direction = reward_model.source.get("dpa_direction") or {a: 1.0 for a in reward_model.attributes[:1]}
    return dpa_system_prompt(list(direction), list(direction.values()))


def dpa_blind_config(settings: Settings, model: str, reward_model: str, *, from_session: str, n: int | None = None,
                     session: str | None = None, max_new_tokens: int = BLIND_MAX_NEW_TOKENS, batch_size: int = BLIND_BATCH,
                     temperature: float | None = None) -> GeneratePairsConfig:
    """The pair-generation config: ``model`` plain vs conditioned on the DPA system prompt of ``reward_model``
    (fitted on a session's votes), on the prompts of ``from_session`` whose votes fitted nothing, the first ``n``."""
    from workbench.preference.reward_heads import load_reward_model  # torch: not needed to build the CLI

    rm = load_reward_model(settings, reward_model)
    system = dpa_system(rm)
    chosen = _first(unfitted_session_prompts(settings, from_session, [rm]), n)
    session = session or f"dpa-blind-{time.strftime('%Y%m%d-%H%M%S')}"
    return GeneratePairsConfig(dataset=session, prompts=chosen, session=session, batch_size=batch_size, candidate=STEERED, sources=[
        PairSource(name=UNSTEERED, model=model, sampling=_sampling(max_new_tokens, temperature, 0)),
        PairSource(name=STEERED, model=model, system=system, sampling=_sampling(max_new_tokens, temperature, 1))])


def start_dpa_blind_session(manager: JobManager, model: str, reward_model: str, **kw: Any) -> Run:
    """Start the job that makes the blind plain-vs-DPA-conditioned session (see ``dpa_blind_config``)."""
    return manager.submit(GENERATE_PAIRS.name, dpa_blind_config(manager.settings, model, reward_model, **kw))


def pal_verdict(summary: dict[str, Any]) -> dict[str, Any]:
    """A PAL run's answer to "did it win?": each model's held-out accuracy with its 95 % Wilson interval
    (continuity-corrected) on the run's test votes, and whether the best PAL model's interval clears
    Bradley–Terry's. PAL writes no answers, so this, not a blind session, is its verdict."""
    from workbench.preference.intervals import wilson_interval  # numpy only; the CLI never reads a verdict

    n = int(summary.get("n_test_pairs") or 0)
    seen = {k: v for k, v in (summary.get("seen") or {}).items() if k != "oracle"}
    if not n or "BT" not in seen:
        raise DataError("The PAL run recorded no held-out accuracy (no test votes, or no Bradley–Terry baseline).",
                        hint="Start it again from a session with more votes on more prompts.")
    rows = []
    for name, acc in seen.items():
        lo, hi = wilson_interval(acc * n, n)
        rows.append({"model": name, "accuracy": float(acc), "interval": [float(lo), float(hi)], "n": n})
    bt = next(r for r in rows if r["model"] == "BT")
    best = max((r for r in rows if r["model"] != "BT"), key=lambda r: r["accuracy"], default=None)
    if best is None:
        text = "Only Bradley–Terry was trained: nothing to compare."
    elif best["interval"][0] > bt["interval"][1]:
        text = f"{best['model']} beats Bradley–Terry on the {n} held-out votes: their intervals do not overlap."
    elif best["interval"][1] < bt["interval"][0]:
        text = f"Bradley–Terry beats every PAL model on the {n} held-out votes: their intervals do not overlap."
    else:
        text = (f"Not enough held-out votes to tell: {best['model']} {best['accuracy']:.3f} and Bradley–Terry "
                f"{bt['accuracy']:.3f} have overlapping intervals on {n} votes.")
    return {"rows": rows, "verdict": text, "per_annotator": summary.get("per_annotator") or {}}
