"""The persona benchmark builder on traits with few or lopsided statements: bounded draws,
refused (or, on request, accepted and reported) unbalanced traits, and the script's options."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.errors import ConfigError, DataError
from workbench.training.persona import PersonaSpec, build_persona_benchmark, trait_counts

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_persona_benchmark.py"


def persona_folder(folder: Path, counts: dict[str, tuple[int, int]], low_confidence: int = 2) -> Path:
    """Trait files in the anthropics/evals shape with ``yes``/``no`` confident statements each (plus a few unsure ones)."""
    folder.mkdir()
    for trait, (yes, no) in counts.items():
        rows = [(f"I am all for {trait}, reason {i}", " Yes", 0.95) for i in range(yes)]
        rows += [(f"I want nothing to do with {trait}, reason {i}", " No", 0.9) for i in range(no)]
        rows += [(f"I am unsure about {trait}, reason {i}", " Yes", 0.6) for i in range(low_confidence)]
        with open(folder / f"{trait}.jsonl", "w", encoding="utf-8") as fh:
            for statement, answer, confidence in rows:
                fh.write(json.dumps({"statement": statement, "answer_matching_behavior": answer, "label_confidence": confidence,
                                     "question": f'Is the following something you would say?\n"{statement}"'}) + "\n")
    return folder


SIZES = dict(n_groups=2, n_seen_users=4, n_unseen_users=1, train_pairs_per_user=12, test_pairs_per_user=4, unseen_pool_per_user=6,
             statements_per_trait=20, seed=1)


def test_lopsided_traits_are_refused_with_their_counts_or_accepted_on_request(tmp_path):
    folder = persona_folder(tmp_path / "p", {"cats": (10, 10), "rain": (12, 3), "jazz": (2, 7)})
    spec = PersonaSpec(traits=["cats", "rain", "jazz"], **SIZES)
    with pytest.raises(DataError, match=r"2 trait\(s\) have fewer than 10.*rain \(12 Yes / 3 No\), jazz \(2 Yes / 7 No\)") as err:
        build_persona_benchmark(folder, spec)
    assert "--allow-unbalanced" in str(err.value) and "--min-confidence" in str(err.value)
    pairs, truth = build_persona_benchmark(folder, PersonaSpec(traits=["cats", "rain", "jazz"], allow_unbalanced=True, **SIZES))
    assert truth["statements_per_trait"] == {"cats": {"yes": 10, "no": 10}, "rain": {"yes": 10, "no": 3}, "jazz": {"yes": 2, "no": 7}}
    assert len(pairs) == 4 * 16 + 1 * 10
    assert trait_counts(folder, ["rain"], 0.5) == {"rain": {"yes": 14, "no": 3}}  # the unsure ones count below 0.6


def test_no_confident_statement_of_an_answer_names_a_real_option(tmp_path):
    folder = persona_folder(tmp_path / "p", {"cats": (10, 10), "snow": (0, 10)}, low_confidence=10)
    with pytest.raises(DataError, match="snow.jsonl: no statements with answer Yes") as err:
        build_persona_benchmark(folder, PersonaSpec(traits=["cats", "snow"], **SIZES))
    assert "--min-confidence" in str(err.value)
    _, truth = build_persona_benchmark(folder, PersonaSpec(traits=["cats", "snow"], min_confidence=0.5, **SIZES))
    assert truth["statements_per_trait"]["snow"] == {"yes": 10, "no": 10}


def test_pair_draws_are_bounded_when_no_pair_can_clear_the_cut(tmp_path):
    """One trait: every draw pairs a trait with itself, so the old loop never ended."""
    folder = persona_folder(tmp_path / "p", {"cats": (10, 10)})
    # The bound is the number of draws (named in the message), not a wall-clock time.
    with pytest.raises(DataError, match=r"User seen-000, train pairs: only 0 of 12 pairs in 2,400 draws.*cats: weight") as err:
        build_persona_benchmark(folder, PersonaSpec(traits=["cats"], **{**SIZES, "n_groups": 1}))
    assert "--min-gap" in str(err.value)
    with pytest.raises(ConfigError, match="3 groups cannot differ over 1 trait"):
        build_persona_benchmark(folder, PersonaSpec(traits=["cats"], **{**SIZES, "n_groups": 3}))


def _script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


def test_script_options_and_per_trait_report(tmp_path):
    folder = persona_folder(tmp_path / "p", {"cats": (10, 10), "rain": (12, 3)})
    common = [str(folder), str(tmp_path / "out"), "--traits", "cats", "rain", "--groups", "2", "--seen-users", "3", "--unseen-users", "1",
              "--train-pairs", "8", "--test-pairs", "4", "--shot-pool", "4", "--statements-per-trait", "20"]
    refused = _script(*common)
    assert refused.returncode == 2 and "rain (12 Yes / 3 No)" in refused.stderr and not (tmp_path / "out").exists()
    accepted = _script(*common, "--allow-unbalanced")
    assert accepted.returncode == 0, accepted.stderr
    assert "cats: 10 Yes / 10 No" in accepted.stdout and "rain: 10 Yes / 3 No  (unbalanced: 10 of each asked)" in accepted.stdout
    assert (tmp_path / "out" / "pairs.jsonl").exists()
    smaller = _script(*common[:-1], "6", "--min-gap", "0.1", "--min-confidence", "0.9", "--draws-per-pair", "50")
    assert smaller.returncode == 0 and "rain: 3 Yes / 3 No" in smaller.stdout, smaller.stderr
