"""Back into blind labeling: a finished DPO run's base and tuned model answer prompts it never trained on.

One action (``start_blind_session``; ``workbench label from-run``; a button in the Fine-tune
tab) builds a pair-generation job (``labeling.generate-pairs``, the one way pairs are made)
whose two sources are the run's base model and the run's output (``run:<id>`` in the model
catalog), on held-out prompts: the source session's prompts that trained nothing, or a
prompt file. The job opens a blind session on the pairs; its statistics (the verdict of
``workbench.labeling.verdict``) then answer "did it win?" with Bradley–Terry, the raw and the
length-controlled win rate of ``tuned`` over ``base``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workbench.data.types import prompt_text
from workbench.errors import ConfigError, DataError
from workbench.jobs import JobManager, Run
from workbench.labeling.generate import GENERATE_PAIRS
from workbench.training.pairs import frozen_session_split

BASE, TUNED = "base", "tuned"  # the two sources' names in the new session
MAX_PROMPTS = 10_000  # a prompt file longer than this is refused, not truncated
MAX_PROMPT_CHARS = 20_000


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
    """Prompts from a text file (one per line) or a JSONL file (a ``prompt`` per line); blank lines skipped."""
    prompts = []
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            if len(prompts) >= MAX_PROMPTS:
                raise DataError(f"more than {MAX_PROMPTS} prompts.", path=path, line=line_no, hint="Split the file or pass --n.")
            text = line.rstrip("\n")
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
    from workbench.labeling.sessions import LabelingStore  # the store: not needed to build the CLI
    from workbench.store import Store

    frozen = frozen_session_split(run.dir)
    if frozen is None:
        raise ConfigError(f"Run {run.id} trained on a dataset, not a labeling session, so no prompts are known to be held out.",
                          hint="Pass a prompt file (--prompts).")
    trained = {p.prompt_text for p in frozen.train}
    with Store(manager.settings.db_path) as store:
        session_prompts = [prompt_text(p.prompt) for p in LabelingStore(store).pairs(frozen.record["session"])]
    prompts = [p for p in dict.fromkeys(session_prompts) if p not in trained]
    if not prompts:
        raise DataError(f"Every prompt of session '{frozen.record['session']}' trained run {run.id}; none is left to test on.",
                        hint="Pass a prompt file (--prompts) with new prompts.")
    return prompts


def blind_session_config(manager: JobManager, run_id: str, *, prompts: list[str] | None = None, n: int | None = None,
                         session: str | None = None, max_new_tokens: int = 128, batch_size: int = 8) -> dict[str, Any]:
    """The pair-generation config: base vs tuned, greedy, on held-out prompts (or ``prompts``), the first ``n``."""
    run = finished_dpo_run(manager, run_id)
    if n is not None and n < 1:
        raise ConfigError(f"--n must be at least 1, got {n}.")
    chosen = (prompts if prompts is not None else untrained_prompts(manager, run))[:n]
    session = session or f"{run.id}-blind"
    sampling = {"do_sample": False, "max_new_tokens": max_new_tokens}
    return {"dataset": session, "prompts": chosen, "session": session, "batch_size": batch_size,
            "sources": [{"name": BASE, "model": run.config["model"], "sampling": sampling},
                        {"name": TUNED, "model": f"run:{run.id}", "sampling": sampling}]}


def start_blind_session(manager: JobManager, run_id: str, **kw: Any) -> Run:
    """Start the job that makes the blind base-vs-tuned session (see ``blind_session_config``)."""
    return manager.submit(GENERATE_PAIRS.name, blind_session_config(manager, run_id, **kw))
