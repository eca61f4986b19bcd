"""A steering vector fitted from a session's voted pairs, saved where the steering sliders look."""
from __future__ import annotations

import numpy as np
import pytest
from sessions import longer, voted_session

from workbench.data.types import Pair
from workbench.errors import DataError
from workbench.models.loading import load_model
from workbench.preference.vote_steering import steering_from_votes
from workbench.preference.votes import SessionVotes, session_votes
from workbench.settings import Settings
from workbench.steering.contrastive import chosen_rejected_set, contrastive_vectors
from workbench.steering.library import list_vectors, save_vector
from workbench.store import Store


def test_vector_from_voted_pairs_points_toward_the_chosen_responses(tiny_checkpoint, tmp_path) -> None:
    lm = load_model(tiny_checkpoint("llama"), device="cpu", name="tiny")
    words = ["fox", "dog", "answer", "preference", "brown", "lazy"]
    pairs = []
    for i in range(16):
        long = " ".join(words[(i + k) % len(words)] for k in range(10))
        pairs.append(Pair(f"Question {i}?", long if i % 2 else words[i % 6], words[i % 6] if i % 2 else long, id=f"p{i}"))
    lab = voted_session(Store(tmp_path / "wb.sqlite"), "ds", pairs, "s")
    votes = session_votes(lab, "s", min_votes=8)
    vectors = steering_from_votes(lm, votes, [1, 2], first_tokens=None)
    assert sorted(vectors) == [1, 2]
    vec = vectors[2]
    assert vec.name == "votes:s" and vec.info["session"] == "s" and vec.info["n_votes"] == 16
    assert vec.info["snapshot"]["sha256"] == votes.snapshot.sha256
    assert vec.info["accuracy"] >= 0.75 and vec.scale > 0  # chosen (long) responses project higher
    # The same vector as the dataset path gives for the pairs labelled with these votes.
    labelled = [Pair(p.prompt, p.response_a, p.response_b, id=p.id, preferred=longer(p)) for p in pairs]
    direct = contrastive_vectors(lm, chosen_rejected_set(labelled), [2], first_tokens=None)[2]
    assert np.allclose(direct.direction.numpy(), vec.direction.numpy(), atol=1e-5) and direct.scale == pytest.approx(vec.scale)
    settings = Settings(home=tmp_path / "home")
    save_vector(settings, vec)
    saved = list_vectors(settings, d_model=32)
    assert [v.name for v in saved] == ["votes:s"] and saved[0].info["session"] == "s"
    assert np.allclose(saved[0].direction.numpy(), vec.direction.numpy())
    with pytest.raises(DataError, match=r"Session 's' has 7 usable A/B vote\(s\); this needs at least 8"):
        steering_from_votes(lm, SessionVotes("s", votes.votes[:7], {}, votes.snapshot), [1])
    with pytest.raises(DataError, match="a direction needs at least 2"):  # the estimators' own floor, below MIN_VOTES
        steering_from_votes(lm, SessionVotes("s", votes.votes[:1], {}, votes.snapshot), [1], min_votes=1)
