"""The preference loop as a benchmark: from a session with votes to the verdict, each step beside its floor.

    .venv/bin/python benchmarks/loop.py [--votes 40] [--prompts 10] [--tokens 64] [--dpo-steps 2] [--rounds 8]
                                        [--threads 1] [--skip dpo,cancel,generation]

On the demo model (the embedded SmolLM2-135M) and the demo verbosity pairs, in a fresh
workbench home, through the code the app runs (issue 24 §2):

* setup (not timed into the loop): a session of ``--votes`` + ``--prompts`` demo pairs, a scripted
  annotator votes ``--votes`` of them (the longer answer) through the labeling HTTP API of a real
  ``apps.labeling_server`` process;
* steering path: ``fit_from_votes`` (the Loop panel's step 1, in process, the model already loaded
  as in the app) → ``start_steering_blind_session`` (a real pair-generation job: unsteered vs
  steered, ``--prompts`` × ``--tokens``, the prompts that fitted nothing) → the scripted annotator
  votes the blind session over HTTP → ``session_verdict``;
* DPO path: a LoRA DPO job of ``--dpo-steps`` steps on the session → ``start_blind_session``
  (base vs tuned) → votes → verdict.

Each step prints its seconds and its floor: FLOPs of its forward/backward work (2 × parameters
per token forwarded, 4 × for a LoRA backward, tokens counted on the real inputs) at the
``torch.mm`` fp32 rate measured at the start of the run; generation's floor is plain Hugging Face
``model.generate`` on the same prompts in the same batches, timed in this run; a job's start is
set beside a fresh python that imports torch + transformers and loads the model with plain
``from_pretrained`` (plus one more load per further model). Then ``generation_vs_hf_generate_*`` (our
pair-making ``generate`` and the Home chat's ``stream`` against plain batched HF ``generate``,
interleaved rounds, CPU clock) with ``chat_first_token_seconds``, and ``cancel_seconds_<type>``
for every job type: start it through ``JobManager``, wait for a running stage, cancel, and time
until the run is cancelled and its worker process is gone. Steps are wall clock (they span
worker processes); the load average is printed before and after.
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import torch
from peers import add_round_args, interleave, load_line, matmul_flops, median_iqr, round_ratios, set_threads
from transformers import AutoModelForCausalLM

from plugins.labeling.loop_panel import COEFFICIENT, fit_layer
from plugins.steering.actions import fit_from_votes
from workbench.context import AppContext
from workbench.data.demo import load_demo_pairs
from workbench.jobs import JobManager, Run
from workbench.jobs.manifest import ACTIVE
from workbench.jobs.options import SamplingOptions
from workbench.jobs.runner import pid_alive
from workbench.labeling.verdict import session_verdict
from workbench.loop import start_blind_session, start_steering_blind_session
from workbench.models.embedded import DEMO_MODEL_NAME
from workbench.models.generation import generate, render_prompt, stream
from workbench.models.loading import LoadedModel
from workbench.preference.reward_heads import AspectComparison, reward_models_dir, train_reward_model
from workbench.sae.synthetic import synthetic_paths
from workbench.settings import Settings
from workbench.training.logprobs import encode_pair
from workbench.training.pairs import frozen_session_split

ROOT = Path(__file__).resolve().parents[1]
CHAT_PROMPT = "Tell me about the history of the moon landing."


class Floors:
    """The run's matmul rate and the per-step lines: seconds, floor, ratio."""

    def __init__(self, lm: LoadedModel, flops: float) -> None:
        self.flops = flops
        self.body = sum(p.numel() for p in lm.model.parameters()) - lm.model.get_input_embeddings().weight.numel()
        self.head = lm.model.get_output_embeddings().weight.numel()  # tied to the embedding in SmolLM2, but still a matmul
        self.ratios: dict[str, float] = {}
        self.start = self.load = 0.0  # a bare process's start and one more model load (``start_floors``)

    def compute(self, tokens: float, per_token: float) -> float:
        """Seconds of ``per_token`` × parameters FLOPs per token at the measured rate."""
        return per_token * tokens / self.flops

    def line(self, step: str, seconds: float, floor: float | None, how: str) -> None:
        ratio = f"{seconds / floor:.2f}" if floor else "n/a"
        floor_text = f"{floor:.2f} s" if floor else "none"
        print(f"step {step}: {seconds:.2f} s, floor {floor_text} ({how})")
        print(f"ratio_to_floor_{step}: {ratio}")
        if floor:
            self.ratios[step] = seconds / floor


@contextmanager
def counting_tokens(lm: LoadedModel) -> Iterator[list[int]]:
    """Count the real (unpadded) tokens the decoder forwards while inside: ``[count]``."""
    count = [0]

    def hook(module: Any, args: tuple, kwargs: dict) -> None:
        mask, ids = kwargs.get("attention_mask"), kwargs.get("input_ids", args[0] if args else None)
        count[0] += int(mask.sum()) if mask is not None and mask.dim() == 2 else int(ids.numel()) if ids is not None else 0

    handle = lm.model.get_decoder().register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield count
    finally:
        handle.remove()


def hf_generate(lm: LoadedModel, prompts: list[str], batch: int, tokens: int, **sampling: Any) -> list[int]:
    """Plain Hugging Face ``generate`` over ``prompts`` in batches of ``batch`` (left-padded chat prompts): the floor."""
    tok, out = lm.tokenizer, []
    for i in range(0, len(prompts), batch):
        texts = [render_prompt(tok, p) for p in prompts[i:i + batch]]
        enc = tok(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
        if sampling.get("do_sample"):
            torch.manual_seed(0)
        with torch.inference_mode():
            ids = lm.model.generate(**enc, max_new_tokens=tokens, pad_token_id=tok.pad_token_id, **sampling)
        out += ids[:, enc["input_ids"].shape[1]:].tolist()
    return out


def start_floors(lm: LoadedModel) -> tuple[float, float]:
    """(a fresh Python process that imports torch + transformers and loads the model with plain
    ``from_pretrained``, one more ``from_pretrained`` in this process): the least a job's start can take."""
    code = ("import sys, torch; torch.set_num_threads(1); from transformers import AutoModelForCausalLM; "
            "AutoModelForCausalLM.from_pretrained(sys.argv[1])")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, str(lm.path)], check=True, capture_output=True)
    start = time.perf_counter() - t0
    t0 = time.perf_counter()
    AutoModelForCausalLM.from_pretrained(lm.path)
    return start, time.perf_counter() - t0


# -- the labeling server and the scripted annotator ---------------------------------------
@contextmanager
def labeling_server(home: Path) -> Iterator[str]:
    """A real ``apps.labeling_server --api-only`` process on a free port; yields the API's base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "apps.labeling_server", "--api-only", "--port", str(port), "--home", str(home)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{port}/api/labeling"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"{api}/sessions", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the labeling server did not start")
            time.sleep(0.2)
        yield api
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def annotate(api: str, session: str, name: str, limit: int | None = None) -> int:
    """Vote through the queue (the longer answer, clearly) until it is empty or ``limit`` votes; returns the votes cast."""
    token = httpx.post(f"{api}/sessions/{session}/annotators", json={"name": name}, timeout=60).json()["token"]
    with httpx.Client(headers={"x-annotator-token": token}, timeout=120) as http:
        item = http.get(f"{api}/sessions/{session}/annotators/{name}/next").json()["item"]
        n = 0
        while item is not None and (limit is None or n < limit):
            choice = "left" if len(item["left"]) >= len(item["right"]) else "right"
            r = http.post(f"{api}/sessions/{session}/annotators/{name}/votes",
                          json={"pair_id": item["pair_id"], "choice": choice, "displayed_order": item["displayed_order"], "strength": 2})
            r.raise_for_status()
            item, n = r.json()["next"]["item"], n + 1
    return n


# -- following a job -----------------------------------------------------------------------
def follow(run: Run, timeout: float = 3600) -> dict[str, float]:
    """Wait for the run to finish; the seconds since submission at which each progress stage/message first showed."""
    t0, seen = time.perf_counter(), {}
    while run.is_active():
        p = run.progress()
        if p:
            for key in (f"stage:{p.get('stage')}", f"message:{p.get('message', '')[:40]}"):
                seen.setdefault(key, time.perf_counter() - t0)
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"run {run.id} still running after {timeout} s")
        time.sleep(0.05)
    if run.status != "finished":
        raise RuntimeError(f"run {run.id} {run.status}:\n{run.log_tail(40)}")
    seen["end"] = time.perf_counter() - t0
    return seen


def first_seen(seen: dict[str, float], prefix: str) -> float | None:
    hits = [t for k, t in seen.items() if k.startswith(prefix)]
    return min(hits) if hits else None


def blind_step(f: Floors, lm: LoadedModel, run: Run, args: argparse.Namespace, step: str, loads: int) -> float:
    """A pair-generation job: its start (to the first batch) beside a bare process loading ``loads`` models,
    its answers beside plain batched HF ``generate`` of both sources; returns the job's seconds (no floor in them)."""
    seen = follow(run)
    start = first_seen(seen, "message:") or seen["end"]
    f.line(f"{step}_start", start, f.start + (loads - 1) * f.load,
           f"a fresh python importing torch + transformers and from_pretrained {f.start:.2f} s, + {loads - 1} more load(s)")
    t0 = time.perf_counter()
    for _ in range(2):
        hf_generate(lm, run.config["prompts"], args.batch_size, args.tokens, do_sample=False)
    f.line(f"{step}_generate", seen["end"] - start, time.perf_counter() - t0,
           f"plain HF generate of both sources on the same prompts, batches of {args.batch_size}, greedy, {args.tokens} new tokens")
    return seen["end"]


def verdict_line(won: dict[str, Any]) -> str:
    """The verdict as the session's statistics give it: each rate with its interval, and whether
    the length-controlled one extrapolates (10 votes decide little; a bare point would look certain)."""
    def rate(key: str) -> str:
        lo, hi = won[f"{key}_ci"]
        return f"{won[key]:.2f} [{lo:.2f}, {hi:.2f}]"

    support = won.get("length_support") or {}
    note = f"; {support['note']}" if support.get("extrapolates") else ""
    return (f"{won['candidate']} win rate {rate('win_rate')}, length-controlled {rate('lc_win_rate')} over {won['n']} votes "
            f"({won['verdict']}{note})")


def vote_and_verdict(f: Floors, ctx: AppContext, api: str, blind: str, path: str) -> float:
    t0 = time.perf_counter()
    n = annotate(api, blind, "scripted")
    votes = time.perf_counter() - t0
    f.line(f"{path}_votes", votes, None, f"{n} votes over HTTP, {1000 * votes / max(n, 1):.0f} ms each: no model work")
    t1 = time.perf_counter()
    won = session_verdict(ctx.labeling, blind)["did_it_win"]
    verdict = time.perf_counter() - t1
    f.line(f"{path}_verdict", verdict, None, "Bradley–Terry and win rates: no model work")
    print(f"{path}_verdict: {won.get('error') or verdict_line(won)}")
    return votes + verdict


def steering_loop(f: Floors, ctx: AppContext, lm: LoadedModel, api: str, session: str, args: argparse.Namespace) -> float:
    layer = fit_layer(lm.n_layers)
    t0 = time.perf_counter()
    with counting_tokens(lm) as count:
        (row,) = fit_from_votes(ctx, session, "mean_diff", str(layer), model=DEMO_MODEL_NAME)
    fit = time.perf_counter() - t0
    f.line("fit", fit, f.compute(count[0], 2 * f.body), f"2 x {f.body / 1e6:.1f}M params x {count[0]:,} tokens forwarded, no LM head")
    t1 = time.perf_counter()
    run = start_steering_blind_session(JobManager.for_context(ctx), DEMO_MODEL_NAME, [(row[0], COEFFICIENT)], from_session=session,
                                       n=args.prompts, max_new_tokens=args.tokens, batch_size=args.batch_size)
    blind = time.perf_counter() - t1 + blind_step(f, lm, run, args, "steering_blind", 1)
    return fit + blind + vote_and_verdict(f, ctx, api, run.config["session"], "steering")


def dpo_tokens(lm: LoadedModel, pairs: list[Any], max_length: int) -> int:
    """Tokens of prompt + chosen and prompt + rejected per pair, as DPO encodes them."""
    return sum(len(encode_pair(lm.tokenizer, p.prompt, r, max_length)[0]) for p in pairs for r in (p.chosen, p.rejected))


def dpo_run_steps(f: Floors, lm: LoadedModel, run: Run, seen: dict[str, float], args: argparse.Namespace) -> None:
    """The DPO job's training, evaluation and the rest (start, loads, saving), each beside its floor."""
    split, cfg = frozen_session_split(run.dir), run.config
    per_pair = dpo_tokens(lm, split.train, cfg["max_length"]) / len(split.train)
    train_tokens = per_pair * cfg["batch_size"] * args.dpo_steps
    runtime = next(row["train_runtime"] for row in reversed(run.metrics()) if "train_runtime" in row)
    per_token = 4 * (f.body + f.head) + 2 * (f.body + f.head)  # LoRA policy forward + backward, reference forward
    f.line("dpo_train", runtime, f.compute(train_tokens, per_token),
           f"6 x {(f.body + f.head) / 1e6:.1f}M params x {train_tokens:,.0f} tokens: policy forward + backward, reference forward")
    evaluated = split.held_out + split.train[:cfg["eval_max_pairs"]]
    eval_tokens = 2 * dpo_tokens(lm, evaluated, cfg["max_length"])  # before and after
    start_eval = first_seen(seen, "stage:evaluate") or seen["end"]
    f.line("dpo_evaluate", seen["end"] - start_eval, f.compute(eval_tokens, 2 * (f.body + f.head)),
           f"2 x params x {eval_tokens:,} tokens: {len(evaluated)} pairs scored before and after")
    rest = seen["end"] - runtime - (seen["end"] - start_eval)
    f.line("dpo_start_and_loads", rest, f.start + f.load, "a fresh python importing torch + transformers and from_pretrained, "
           "+ one more load (train, evaluate); the rest is imports of TRL/PEFT, trainer set-up, saving")


def dpo_loop(f: Floors, ctx: AppContext, lm: LoadedModel, api: str, session: str, args: argparse.Namespace) -> float:
    manager = JobManager.for_context(ctx)
    t0 = time.perf_counter()
    run = manager.submit("dpo", {"session": session, "model": DEMO_MODEL_NAME, "max_steps": args.dpo_steps, "batch_size": 2,
                                 "max_length": 256, "learning_rate": 5e-4, "held_out_fraction": 0.1, "n_samples": 0,
                                 "eval_max_pairs": 2, "save_steps": 1000, "device": "cpu"})
    seen = follow(run)
    dpo = time.perf_counter() - t0
    dpo_run_steps(f, lm, run, seen, args)
    t1 = time.perf_counter()
    blind_run = start_blind_session(manager, run.id, n=args.prompts, max_new_tokens=args.tokens, batch_size=args.batch_size)
    blind = time.perf_counter() - t1 + blind_step(f, lm, blind_run, args, "dpo_blind", 2)
    return dpo + blind + vote_and_verdict(f, ctx, api, blind_run.config["session"], "dpo")


# -- generation against plain HF generate --------------------------------------------------
def pair_generation_ratio(lm: LoadedModel, prompts: list[str], args: argparse.Namespace) -> None:
    """Our pair-making ``generate`` vs plain HF ``generate`` on one batch per round (greedy: the same tokens)."""
    batches = [prompts[(r * args.batch_size) % len(prompts):][:args.batch_size] or prompts[:args.batch_size] for r in range(args.rounds)]
    greedy = SamplingOptions(do_sample=False, max_new_tokens=args.tokens)
    texts: dict[str, list[str]] = {}

    def keep(r: int, out: dict[str, Any]) -> None:
        texts["ours"], texts["hf"] = out["ours"], [lm.tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in out["hf"]]
        if texts["ours"] != texts["hf"]:
            print(f"note: round {r}: our answers differ from HF generate's")

    seconds = interleave({"ours": lambda r: generate(lm, batches[r], greedy),
                          "hf": lambda r: hf_generate(lm, batches[r], args.batch_size, args.tokens, do_sample=False)},
                         args.rounds, after_round=keep, cpu_clock=True)
    print(f"\n== pair-making generation: batches of {args.batch_size} x {args.tokens} tokens, greedy, {args.rounds} rounds, CPU clock ==")
    ratios = round_ratios(seconds, "ours", "hf")
    med, q1, q3 = median_iqr(ratios)
    print(f"generation_vs_hf_generate_pairs: {med:.3f}")
    print(f"generation_vs_hf_generate_pairs_iqr: [{q1:.3f}, {q3:.3f}]")


def chat_ratio(lm: LoadedModel, args: argparse.Namespace) -> None:
    """The Home chat's ``stream`` (sampled, seeded: the same tokens) vs plain HF ``generate`` of the one prompt."""
    settings = SamplingOptions(max_new_tokens=args.tokens, temperature=0.7, seed=0)
    first: list[float] = []

    def chat(r: int) -> str:
        states = list(stream(lm, CHAT_PROMPT, settings))
        last = states[-1] if states else None
        first.append(last.first_token_s if last and last.first_token_s is not None else float("nan"))
        return last.text if last else ""

    kw = settings.generate_kwargs()
    kw.pop("max_new_tokens")
    seconds = interleave({"ours": chat, "hf": lambda r: hf_generate(lm, [CHAT_PROMPT], 1, args.tokens, **kw)},
                         args.rounds, cpu_clock=True)
    print(f"\n== chat: one prompt, {args.tokens} tokens sampled (seeded), streamed vs plain generate, {args.rounds} rounds, CPU clock ==")
    med, q1, q3 = median_iqr(round_ratios(seconds, "ours", "hf"))
    print(f"generation_vs_hf_generate_chat: {med:.3f}")
    print(f"generation_vs_hf_generate_chat_iqr: [{q1:.3f}, {q3:.3f}]")
    fmed, fq1, fq3 = median_iqr(first)
    print(f"chat_first_token_seconds: {fmed:.3f} (wall clock, median of {len(first)}, IQR [{fq1:.3f}, {fq3:.3f}])")


# -- cancel every job type -----------------------------------------------------------------
def cancel_seconds(manager: JobManager, job_type: str, config: dict[str, Any],
                   started: Callable[[dict[str, Any]], bool]) -> tuple[float, float, str, str]:
    """Start a job, cancel it once ``started(progress)``; (seconds until the worker is gone, until the run
    said cancelled, status, where it was)."""
    run = manager.submit(job_type, config)
    deadline = time.monotonic() + 900
    while not started(p := run.progress()):
        if not run.is_active() or time.monotonic() > deadline:
            raise RuntimeError(f"{job_type} run {run.id} is {run.status} before reaching its stage:\n{run.log_tail(30)}")
        time.sleep(0.02)
    t0, said = time.perf_counter(), None
    run.cancel()
    while (m := run.manifest).status in ACTIVE or (m.pid is not None and pid_alive(m.pid)):
        if said is None and m.status not in ACTIVE:
            said = time.perf_counter() - t0
        time.sleep(0.02)
    gone = time.perf_counter() - t0
    where = f"{p.get('stage')} {p.get('step')}/{p.get('total')} {p.get('message', '')[:50]}"
    return gone, gone if said is None else said, m.status, where


def rsf_reward_model(ctx: AppContext, lm: LoadedModel) -> str:
    """A two-aspect reward head on the demo pairs, saved where the RSF job finds it."""
    comps = [AspectComparison(p.prompt, p.response_a, p.response_b, p.metadata["attribute"], "B")
             for p in load_demo_pairs() if p.metadata["attribute"] in ("verbosity", "formality")][::5]
    train_reward_model(lm, name="loop-rm", layer=fit_layer(lm.n_layers), comparisons=comps).save(reward_models_dir(ctx.settings))
    return "loop-rm"


def cancel_jobs(ctx: AppContext, lm: LoadedModel, session: str, pal_session: str, prompts: list[str]) -> None:
    manager = JobManager.for_context(ctx)
    interactions, items, _ = synthetic_paths()
    any_stage: Callable[[dict[str, Any]], bool] = lambda p: bool(p.get("stage"))  # noqa: E731
    dpo = {"session": session, "model": DEMO_MODEL_NAME, "batch_size": 2, "max_length": 256, "n_samples": 0, "held_out_fraction": 0.1,
           "save_steps": 1000, "device": "cpu"}
    greedy = {"do_sample": False, "max_new_tokens": 256}
    jobs = {
        "dpo": ("dpo", {**dpo, "max_steps": 1000}, lambda p: p.get("stage") == "train"),
        "dpo_evaluate": ("dpo", {**dpo, "max_steps": 1, "eval_max_pairs": 64}, lambda p: p.get("stage") == "evaluate"),
        "pair_generation": ("generate-pairs", {"dataset": "cancel-pairs", "prompts": prompts, "sources": [
            {"name": "a", "model": DEMO_MODEL_NAME, "sampling": greedy},
            {"name": "b", "model": DEMO_MODEL_NAME, "sampling": {"max_new_tokens": 256}}]}, lambda p: "answering" in p.get("message", "")),
        "pal": ("pal", {"session": pal_session, "epochs": 5000, "k": 2}, any_stage),
        "recsae": ("recsae", {"interactions": str(interactions), "attributes": str(items), "epochs": 200}, any_stage),
        "lm_sae": ("lm-sae", {"model": DEMO_MODEL_NAME, "dataset": "demo", "prefer_pole": "verbose"}, any_stage),
        "rsf": ("dpa-rsf", {"reward_model": rsf_reward_model(ctx, lm), "prompts": prompts, "n": 4, "max_new_tokens": 64,
                            "iterations": 10}, any_stage),
    }
    print("\n== cancel: start each job type, cancel at a running stage, until cancelled and the worker is gone ==")
    for name, (job_type, config, started) in jobs.items():
        if job_type not in manager.types:
            print(f"cancel_seconds_{name}: n/a (no job type {job_type!r}: is its plugin installed?)")
            continue
        seconds, said, status, where = cancel_seconds(manager, job_type, config, started)
        print(f"cancel_seconds_{name}: {seconds:.2f} ({status} after {said:.2f} s, then the process exited; cancelled at {where})")
    missing = sorted(set(manager.types) - {job_type for job_type, _, _ in jobs.values()})
    if missing:
        print(f"note: job types not measured here: {', '.join(missing)}")


# -- setup and the run -------------------------------------------------------------------------
def make_sessions(ctx: AppContext, args: argparse.Namespace) -> tuple[str, str, list[str]]:
    """The voted session's pairs (``--votes`` + ``--prompts`` verbosity pairs), the demo dataset, and a two-annotator PAL session."""
    demo = load_demo_pairs()
    ctx.store.import_pairs("demo", demo, source="demo pairs", format="unlabeled")
    verbosity = [p for p in demo if p.metadata["attribute"] == "verbosity"][:args.votes + args.prompts]
    ctx.store.import_pairs("loop-pairs", verbosity, source="demo verbosity pairs", format="unlabeled")
    ctx.labeling.create_session("loop", "loop-pairs")
    ctx.labeling.create_session("pal-votes", "loop-pairs")
    for who, long in (("alice", True), ("bob", False)):
        ctx.labeling.join("pal-votes", who)
        for p in verbosity:
            ctx.labeling.vote("pal-votes", who, p.id, "B" if long else "A")
    return "loop", "pal-votes", [p.prompt for p in verbosity[args.votes:]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--votes", type=int, default=40, help="votes in the session the loop starts from")
    parser.add_argument("--prompts", type=int, default=10, help="prompts of each blind session")
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per blind answer (and per chat answer)")
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per generation batch (the loop's default)")
    parser.add_argument("--dpo-steps", type=int, default=2)
    parser.add_argument("--skip", default="", help="comma-separated parts to leave out: steering, dpo, generation, cancel")
    add_round_args(parser, clock=False)
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    set_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(torch.get_num_threads())  # the job workers: the same thread count
    print(f"start: {load_line()}, torch threads {torch.get_num_threads()}")
    flops = matmul_flops(torch.device("cpu"), torch.float32)
    print(f"matmul_gflops_fp32: {flops / 1e9:.1f} (torch.mm 2048², wall clock, at the start)")
    home = Path(tempfile.mkdtemp(prefix="wb-loop-bench-"))
    ctx = AppContext(Settings(home=home))
    t0 = time.perf_counter()
    lm = ctx.get_model(DEMO_MODEL_NAME)
    print(f"setup_model_seconds: {time.perf_counter() - t0:.2f} (first load in a fresh home: GGUF conversion included; not in the loop)")
    f = Floors(lm, flops)
    f.start, f.load = start_floors(lm)
    print(f"bare_start_seconds: {f.start:.2f} (fresh python: import torch + transformers, from_pretrained); "
          f"bare_load_seconds: {f.load:.2f}")
    session, pal_session, prompts = make_sessions(ctx, args)
    with labeling_server(home) as api:
        t0 = time.perf_counter()
        n = annotate(api, session, "voter", args.votes)
        print(f"setup_votes: {n} votes over HTTP in {time.perf_counter() - t0:.2f} s (the session the loop starts from)")
        if "steering" not in skip:
            print("\n== steering loop ==")
            print(f"loop_steering_seconds: {steering_loop(f, ctx, lm, api, session, args):.2f}")
        if "dpo" not in skip:
            print("\n== DPO loop ==")
            print(f"loop_dpo_seconds: {dpo_loop(f, ctx, lm, api, session, args):.2f}")
    if "generation" not in skip:
        pair_generation_ratio(lm, prompts, args)
        chat_ratio(lm, args)
    if "cancel" not in skip:
        cancel_jobs(ctx, lm, session, pal_session, prompts)
    worst = max(f.ratios.items(), key=lambda kv: kv[1]) if f.ratios else None
    if worst:
        print(f"\nworst_step: {worst[0]} at {worst[1]:.2f}x its floor")
    print(f"matmul_gflops_fp32_end: {matmul_flops(torch.device('cpu'), torch.float32) / 1e9:.1f}")
    print(f"end: {load_line()}; home {home}")


if __name__ == "__main__":
    main()
