"""The peer libraries the benchmarks compare against, built offline from our loaded model.

Peers are an optional extra (``pip install -e .[bench]``), never a runtime dependency. Each
loader returns the peer object, or None and a sentence saying why it cannot run here, which
the benchmark prints instead of a figure. Nothing is fetched from a hub: TransformerLens gets
its config from the converted demo folder (its own ``convert_hf_model_config`` reads a local
``config.json``) and its weights from our already loaded model through its own converter.
Shared timing helpers live here too, so every benchmark measures the same way: contenders run
in short interleaved rounds (each contender once per round on the same work, the order rotated
from round to round), and a peer's ratio is the median of the per-round ratios with its
interquartile range. Load from other processes that lasts seconds then slows every contender
of the rounds it falls in alike and cancels in those rounds' ratios, instead of deciding a
total by which contender happened to meet it.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from workbench.models.loading import LoadedModel

PEERS = ("transformerlens", "nnsight", "steering_vectors", "repeng")
ROUNDS = 8  # the fewest interleaved rounds a ratio is quoted from (issue 24)


def add_round_args(parser: argparse.ArgumentParser, rounds: int = ROUNDS, torch_threads: bool = True, clock: bool = True) -> None:
    """``--rounds``, ``--clock`` and ``--threads``: every benchmark with a ratio takes them, with one meaning.

    ``torch_threads=False`` leaves out ``--clock`` and ``--threads`` where no contender computes
    with torch; ``clock=False`` leaves out ``--clock`` where the contenders time themselves.
    """
    parser.add_argument("--rounds", type=int, default=rounds,
                        help=f"interleaved rounds, each contender once per round, order rotated (default {rounds}; "
                             f"fewer than {ROUNDS} gives ratios that load on a shared machine can flip)")
    if not torch_threads:
        return
    if clock:
        parser.add_argument("--clock", choices=("wall", "cpu"), default="cpu",
                            help="cpu (default): the process's CPU time on a CPU device (with one thread the contender's "
                                 "own work: seconds other processes hold the cores do not count); wall: elapsed time. "
                                 "A GPU run always uses the wall clock")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads, the same for every contender (default 1; 0 = one per CPU). "
                             "With more threads than free cores a parallel region waits for its slowest, descheduled "
                             "thread, and a busy machine then decides the figure")


def set_threads(threads: int = 0) -> int:
    """Fix torch's thread count for the whole run, so every contender gets the same cores.

    A library that sized its own pool would otherwise be measured with more (or fewer) threads
    than the others. One thread is the default because on a shared 2-core VM at load 5-6 one
    300-token forward took 1.0-1.5 s with one thread and 3-17 s with two (2026-12-06): every
    parallel region waits for its descheduled thread, so the figure measures the neighbours.
    Returns the count set (``threads``, or one per CPU when 0).
    """
    n = threads or os.cpu_count() or 1
    torch.set_num_threads(n)
    return n


def rotated(names: list[str], r: int) -> list[str]:
    """``names`` starting at position ``r`` (mod len): round ``r``'s order, so each one goes first in turn."""
    k = r % len(names) if names else 0
    return names[k:] + names[:k]


def interleave(contenders: Mapping[str, Callable[[int], Any]], rounds: int, device: torch.device | None = None,
               after_round: Callable[[int, dict[str, Any]], None] | None = None, cpu_clock: bool = False) -> dict[str, list[float]]:
    """Seconds per contender per round: round ``r`` calls every ``contenders[name](r)`` once, order rotated.

    A contender is called with the round index and must do that round's work (the same for all
    contenders of the round); ``after_round(r, outputs)`` sees the round's results (for checks
    that the contenders agree) outside the timed calls.

    ``cpu_clock`` (CPU device only) times with the process's CPU time instead of the wall
    clock: with one torch thread that is the contender's own work, and the seconds other
    processes hold the cores are not counted at all (cache and memory-bandwidth contention
    still are). Wall time cannot tell those apart; a GPU run always uses the wall clock.
    """
    dev = device or torch.device("cpu")
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    for r in range(rounds):
        outputs = {}
        for name in rotated(list(contenders), r):
            t, outputs[name] = clocked(dev, lambda name=name, r=r: contenders[name](r), cpu_clock)
            seconds[name].append(t)
        if after_round:
            after_round(r, outputs)
    return seconds


def median_iqr(values: list[float] | np.ndarray) -> tuple[float, float, float]:
    """(median, 25th percentile, 75th percentile)."""
    q1, med, q3 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return float(med), float(q1), float(q3)


def spread(values: list[float] | np.ndarray, fmt: str = ".2f") -> str:
    """"X (median of n rounds, IQR [lo, hi])" for a figure line."""
    med, q1, q3 = median_iqr(values)
    return f"{med:{fmt}} (median of {len(values)} rounds, IQR [{q1:{fmt}}, {q3:{fmt}}])"


def round_ratios(seconds: Mapping[str, list[float]], a: str, b: str) -> np.ndarray:
    """Per round, ``a``'s rate ÷ ``b``'s rate on that round's (shared) work: b's seconds ÷ a's."""
    return np.asarray(seconds[b], dtype=float) / np.asarray(seconds[a], dtype=float)


def report_rounds(seconds: Mapping[str, list[float]], work: list[float] | float, unit: str, *, metric: str,
                  ours: str = "ours", peers: list[str] | None = None, fmt: str = ",.1f", ratio_fmt: str = ".2f") -> dict[str, float]:
    """Print every contender's rate and every peer's ratio from interleaved rounds; return the ratios.

    ``work`` is each round's amount of work (or one amount for all), so a contender's rate in a
    round is work / seconds. Printed: ``<name>_<metric>: median unit (median of n rounds, IQR
    [..])`` per contender, then per peer ``ratio_vs_<peer>: X`` (the median over rounds of ours'
    rate ÷ the peer's rate in the same round: > 1 means ours is faster) and
    ``ratio_vs_<peer>_iqr: [lo, hi]``, for ``peers`` (default: every contender but ours). The
    returned dict maps each peer to that median ratio.
    """
    n = len(seconds[ours])
    amounts = np.full(n, float(work)) if np.isscalar(work) else np.asarray(work, dtype=float)
    return report_rates({name: amounts / np.asarray(ts, dtype=float) for name, ts in seconds.items()}, unit, metric=metric,
                        ours=ours, peers=peers, fmt=fmt, ratio_fmt=ratio_fmt, seconds=seconds)


def report_rates(rates: Mapping[str, list[float] | np.ndarray], unit: str, *, metric: str, ours: str = "ours",
                 peers: list[str] | None = None, fmt: str = ",.1f", ratio_fmt: str = ".2f",
                 seconds: Mapping[str, list[float]] | None = None) -> dict[str, float]:
    """``report_rounds`` for rates measured per round by the contenders themselves (higher is better).

    Ratios are still taken round by round (ours ÷ the peer in the same round) before the median.
    """
    rates = {name: np.asarray(r, dtype=float) for name, r in rates.items()}
    n = len(rates[ours])
    for name, rate in rates.items():
        med, q1, q3 = median_iqr(rate)
        total = f", {sum(seconds[name]):.2f} s in all" if seconds else ""
        print(f"{name}_{metric}: {med:{fmt}} {unit} (median of {n} rounds, IQR [{q1:{fmt}}, {q3:{fmt}}]{total})")
    return {name: ratio_lines(name, rates[ours] / rates[name], ratio_fmt)
            for name in ([c for c in rates if c != ours] if peers is None else peers)}


def ratio_lines(peer: str, per_round: list[float] | np.ndarray, fmt: str = ".2f") -> float:
    """Print ``ratio_vs_<peer>: median`` and ``ratio_vs_<peer>_iqr: [lo, hi]`` of per-round ratios; return the median.

    The one place a ratio line is written, so every benchmark's ratios read (and parse) alike.
    """
    med, q1, q3 = median_iqr(per_round)
    print(f"ratio_vs_{peer}: {med:{fmt}}")
    print(f"ratio_vs_{peer}_iqr: [{q1:{fmt}}, {q3:{fmt}}]")
    if len(per_round) < ROUNDS:
        print(f"note: ratio_vs_{peer} is from {len(per_round)} rounds, fewer than {ROUNDS}: load on a shared machine can flip it")
    return med


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(device: torch.device, fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of ``fn()``, with the device synchronised on both sides."""
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


def clocked(device: torch.device, fn: Callable[[], Any], cpu_clock: bool = False) -> tuple[float, Any]:
    """(seconds, result) of ``fn()`` on a benchmark's clock: the process's CPU time on a CPU device
    when ``cpu_clock`` (as ``interleave``), else the wall clock with the device synchronised.

    Every figure a ratio is taken from goes through one clock: a CPU-time rate over a wall-time
    rate would count a neighbour's seconds on one side only."""
    if cpu_clock and device.type == "cpu":
        c0 = time.process_time()
        out = fn()
        return time.process_time() - c0, out
    return timed(device, fn)


def matmul_flops(device: torch.device, dtype: torch.dtype, size: int = 2048, reps: int = 10, cpu_clock: bool = False) -> float:
    """FLOP/s of ``torch.mm`` on ``size``² matrices: this machine's practical matmul peak right now.

    ``cpu_clock`` (CPU device only) divides by the process's CPU time, as ``interleave`` does.
    """
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(2):
        torch.mm(a, b)
    if cpu_clock and device.type == "cpu":
        c0 = time.process_time()
        for _ in range(reps):
            torch.mm(a, b)
        return 2 * size**3 * reps / (time.process_time() - c0)
    seconds, _ = timed(device, lambda: [torch.mm(a, b) for _ in range(reps)])
    return 2 * size**3 * reps / seconds


def load_line() -> str:
    """The 1/5/15-minute load averages and CPU count: a reader judges how busy the run was."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} (1/5/15 min) on {os.cpu_count()} CPUs"


def machine_line(lm: LoadedModel) -> str:
    return (f"device: {lm.device} ({str(lm.dtype).removeprefix('torch.')}), torch threads: {torch.get_num_threads()}, "
            f"{load_line()}")


def non_embedding_params(lm: LoadedModel) -> int:
    """Parameters that do per-token matmuls (the embedding lookup and a tied LM head do not)."""
    return sum(p.numel() for p in lm.model.parameters()) - lm.model.get_input_embeddings().weight.numel()


def _missing(module: str, package: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return f"{package} is not installed (pip install -e '.[bench]')"
    return None


def transformerlens(lm: LoadedModel) -> tuple[Any, str | None]:
    """A HookedTransformer with our weights, unprocessed (no LN folding), so its states equal ours."""
    if (why := _missing("transformer_lens", "transformer-lens")):
        return None, why
    if lm.adapter.family != "llama":
        return None, f"the offline TransformerLens build here handles Llama-family models; {lm.name} is {lm.adapter.family}"
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.loading_from_pretrained import convert_hf_model_config
    from transformer_lens.pretrained.weight_conversions.llama import convert_llama_weights

    cfg = HookedTransformerConfig(**{**convert_hf_model_config(str(lm.path)), "dtype": lm.dtype, "device": str(lm.device)})
    model = HookedTransformer(cfg, tokenizer=lm.tokenizer, move_to_device=True)
    model.load_and_process_state_dict(convert_llama_weights(lm.model, cfg), fold_ln=False, center_writing_weights=False,
                                      center_unembed=False, fold_value_biases=False)
    return model.eval(), None


def nnsight(lm: LoadedModel) -> tuple[Any, str | None]:
    """nnsight's LanguageModel wrapping our model object (no second copy of the weights)."""
    if (why := _missing("nnsight", "nnsight")):
        return None, why
    from nnsight import LanguageModel

    return LanguageModel(lm.model, tokenizer=lm.tokenizer), None



def interpretability_peers(lm: LoadedModel, wanted: set[str], contender: Callable[[str, Any], Any]) -> dict[str, Any]:
    """TransformerLens and nnsight, those in ``wanted``, as ``contender(name, peer)``: what the
    activation and lens benchmarks race against. One that cannot run here is printed with why and
    left out; the thread count is set again after their imports (none keeps one of its own)."""
    out: dict[str, Any] = {}
    for name, build in (("transformerlens", transformerlens), ("nnsight", nnsight)):
        if name in wanted:
            peer, why = build(lm)
            if peer is None:
                print(f"{name}: cannot run here: {why}")
            else:
                out[name] = contender(name, peer)
    set_threads(torch.get_num_threads())
    return out

def steering_vectors(lm: LoadedModel) -> tuple[Any, str | None]:
    """steering-vectors' SteeringVector class (it guesses the layer layout from the model)."""
    if (why := _missing("steering_vectors", "steering-vectors")):
        return None, why
    from steering_vectors import SteeringVector

    return SteeringVector, None


def repeng(lm: LoadedModel) -> tuple[Any, str | None]:
    """repeng's module (ControlModel, ControlVector), or why it cannot run.

    repeng 0.4.0 annotates with ``np.float_``, removed in NumPy 2; the alias is restored for
    this benchmark process only (it is the same type as ``np.float64``) and the output says so.
    """
    if (why := _missing("repeng", "repeng")):
        return None, why
    import numpy as np

    if lm.adapter.family != "llama":
        return None, f"repeng's ControlModel wraps model.model.layers of Llama-family models; {lm.name} is {lm.adapter.family}"
    if not hasattr(np, "float_"):
        np.float_ = np.float64  # type: ignore[attr-defined]
        print("note: repeng 0.4.0 needs numpy's removed np.float_ alias; restored as np.float64 for this run")
    import repeng as module

    return module, None
