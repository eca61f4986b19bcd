"""Import AlpacaEval-style annotations as judgments, so a public judge's votes can be ranked,
checked for position bias and compared with humans exactly like the workbench's own votes.

Records with the same instruction and outputs become one pair (several judges on one pair
is what agreement needs). Each record's ``annotator`` field names the judge (default
``alpaca_eval``); ``generator_1``/``generator_2`` name the sources. Several files (one per
model, all against the same baseline ``generator_1``) go into one session, so the
leaderboard and the length-controlled model see every candidate at once.

``preference`` 1 is a win for output_1 (A), 2 for output_2 (B), 1.5 a tie. AlpacaEval 2's
judge gives a probability (1.73 = 73 % for output_2): the vote's outcome is the nearer side
and its ``soft`` keeps P(A better) = 2 − preference, so statistics can use either. Records
without a preference are stored as pairs only. output_1 was shown first, so the displayed
order is recorded as "AB".
"""
from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from workbench.data.readers import alpacaeval_soft, read_pairs
from workbench.data.types import Pair, pair_sources
from workbench.errors import DataError
from workbench.labeling.errors import Conflict
from workbench.labeling.sessions import LabelingStore

JUDGE_FIELDS = ("annotator", "preference", "raw_completion", "price_per_example", "time_per_example")
"""Fields of one judge's annotation, not of the pair: kept with the vote (or dropped), not in pair metadata."""


def import_alpacaeval(labeling: LabelingStore, paths: str | Path | Sequence[str | Path], session: str, *,
                      dataset: str | None = None, allow: Collection[str] = (), names: Sequence[str] | None = None,
                      default_annotator: str = "alpaca_eval") -> dict[str, Any]:
    """Store the pairs of every file as dataset ``dataset`` (default: the session name), create
    ``session`` and record every judge's vote, all in one transaction. ``allow`` keeps records
    the reader refuses as likely mistakes (e.g. ``identical``). ``names`` (one per file) names
    each file's model instead of its ``generator_2`` (some released files say ``example``).
    Returns counts: pairs, votes, annotators, sources, baseline, files, unlabeled, repeated."""
    files = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    if not files:
        raise DataError("No annotation files given.", hint="Name one or more AlpacaEval annotations.json files.")
    if names is not None and len(names) != len(files):
        raise DataError(f"{len(names)} model names for {len(files)} files.", field="names",
                        hint="Give one name per file, in the files' order, or none to use each file's generator_2.")
    if session in {s.name for s in labeling.list_sessions()}:
        raise Conflict(f"A labeling session named '{session}' already exists.", hint="Import under another session name.")
    unique: dict[str, Pair] = {}
    votes: list[tuple[str, str, str, float | None]] = []
    seen: set[tuple[str, str]] = set()
    unlabeled = repeated = 0
    baseline: tuple[str, Path, int] | None = None  # name, file and record that set it
    for f, path in enumerate(files):
        for n, record in enumerate(read_pairs(path, format="alpacaeval", allow=allow), start=1):
            if names is not None:
                record.metadata["generator_2"] = names[f]
            sources = pair_sources(record.metadata)
            if sources:
                if baseline is None:
                    baseline = (sources[0], path, n)
                elif sources[0] != baseline[0]:
                    raise DataError(f"record {n} has baseline generator_1 '{sources[0]}', while {baseline[1].name} record "
                                    f"{baseline[2]} has '{baseline[0]}'.", path=path, field="generator_1",
                                    hint="Import files judged against one baseline into one session; use another session "
                                         "for the other baseline.")
            key = _pair_key(record, sources, unique)
            if key not in unique:
                unique[key] = Pair(record.prompt, record.response_a, record.response_b, id=key,
                                   metadata={k: v for k, v in record.metadata.items() if k not in JUDGE_FIELDS})
            if record.preferred is None:
                unlabeled += 1
                continue
            judge = record.metadata.get("annotator")
            judge = judge if isinstance(judge, str) and judge.strip() else default_annotator
            if (key, judge) in seen:
                repeated += 1  # one judge, one vote per pair: the first one counts
                continue
            seen.add((key, judge))
            votes.append((key, judge, record.preferred, alpacaeval_soft(record)))
    if not unique:
        raise DataError("No AlpacaEval records found.", path=files[0], hint="Each record needs instruction, output_1 and output_2.")
    source = files[0] if len(files) == 1 else f"{len(files)} files: " + ", ".join(str(f) for f in files)
    labeling.import_judged_session(session, dataset or session, list(unique.values()), votes, source=str(source),
                                   format="alpacaeval")
    named = [pair_sources(p.metadata) for p in unique.values()]
    candidates = sorted({name for both in named if both for name in both if baseline is None or name != baseline[0]})
    return {"pairs": len(unique), "votes": len(votes), "annotators": sorted({j for _, j, _, _ in votes}),
            "sources": candidates, "baseline": baseline[0] if baseline else None, "files": len(files),
            "unlabeled": unlabeled, "repeated": repeated}


def _pair_key(record: Pair, sources: tuple[str, str] | None, unique: dict[str, Pair]) -> str:
    """The content id, unless another pair with the same texts came from other sources (two
    models giving the same answer): then the sources go into the id, so neither is lost."""
    key = record.content_id()
    other = unique.get(key)
    if other is None or pair_sources(other.metadata) == sources:
        return key
    return hashlib.sha1(f"{key}:{sources}".encode()).hexdigest()[:16]


def infer_baseline(sources: dict[str, tuple[str, str]]) -> str:
    """The source that wrote one side of every source-labelled pair (with one candidate, the one
    always on side A: AlpacaEval's generator_1)."""
    named = [s for s in sources.values() if s]
    if not named:
        raise DataError("No pair in this session records its sources (generator_1/generator_2, source_a/source_b).",
                        hint="Import AlpacaEval annotations with generator fields, or pairs with source_a/source_b metadata.")
    common = set(named[0]).intersection(*named[1:])
    if len(common) > 1:  # one candidate only: the baseline is AlpacaEval's generator_1, response A
        common = {s for s in common if all(both[0] == s for both in named)} or common
    if len(common) != 1:
        seen = sorted({s for both in named for s in both})
        raise DataError(f"No single source is on one side of every pair ({'several are' if common else 'none is'}), "
                        "so the baseline cannot be told.", field="baseline",
                        hint=f"Name it with --baseline (baseline=…); sources: {', '.join(seen[:10])}"
                             + (", …" if len(seen) > 10 else "") + ".")
    return common.pop()


def session_leaderboard(labeling: LabelingStore, session: str, *, baseline: str | None = None,
                        level: float = 0.95) -> dict[str, Any]:
    """AlpacaEval's leaderboard of a session: one row per source against the baseline, with
    n, the soft and discrete win rates, the length-controlled win rate and its interval, the
    length coefficient, whether that rate extrapolates, and the win rate's fragility. Figures
    are percent, as AlpacaEval prints them. ``difficulty`` says which instruction-difficulty
    estimate the length control used."""
    # scipy: `label` commands import this module, and only the leaderboard needs the statistics
    from workbench.preference.fragility import fragility_text, win_rate_fragility
    from workbench.preference.length_control import instruction_difficulty, length_controlled, matchups, win_rates
    from workbench.preference.winrate import Duels, length_support

    pairs = labeling.pairs(session)
    sources = {p.id: s for p in pairs if (s := pair_sources(p.metadata))}
    seen = {s for both in sources.values() for s in both}
    if baseline is None:
        baseline = infer_baseline(sources)
    elif baseline not in seen:
        raise DataError(f"No pair of session '{session}' has a response from '{baseline}'.", field="baseline",
                        hint=f"Sources: {', '.join(sorted(seen)) or 'none recorded'}.")
    table, instructions = matchups(pairs, labeling.judgments(session), baseline, sources)
    if not table:
        raise DataError(f"Session '{session}' has no A/B/tie votes between '{baseline}' and another source.",
                        hint="Import judgments (workbench label import-judgments) or vote first.")
    difficulty = instruction_difficulty(table, len(instructions))
    lc = length_controlled(table, baseline, difficulty, level=level)
    rows = []
    for name, m in table.items():
        support = length_support(Duels(name, m.soft, -m.delta_len, [baseline] * len(m), hard=m.hard, own_length=m.own_len))
        frag = win_rate_fragility(m.soft, level)
        rows.append({"source": name, "n": len(m), **win_rates(m), **lc[name], "extrapolates": support["extrapolates"],
                     "share_longer": support["share_longer"], "extrapolation_note": support["note"],
                     "votes_to_flip": frag["votes_to_flip_winner"], "fragility": fragility_text(frag)})
    rows.sort(key=lambda r: -r["lc_win_rate"])
    return {"session": session, "baseline": baseline, "instructions": len(instructions), "difficulty": difficulty.estimate,
            "level": level, "rows": rows}
