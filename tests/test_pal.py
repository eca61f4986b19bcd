"""PAL-A / PAL-B on planted groups: recover the groups, match the oracle, beat one BT reward."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from workbench.training.pal import BTModel, PALModel, accuracy, adapt_new_users, fit
from workbench.training.pal_data import planted_groups
from workbench.training.pal_job import _first_shots


def _split(data, n_users_seen, frac=0.75, seed=0):
    """Seen users' pairs split train/test; the other users are unseen."""
    g = torch.Generator().manual_seed(seed)
    seen = torch.nonzero(data.user < n_users_seen).squeeze(1)
    unseen = torch.nonzero(data.user >= n_users_seen).squeeze(1)
    seen = seen[torch.randperm(len(seen), generator=g)]
    cut = int(frac * len(seen))
    return data.subset(seen[:cut]), data.subset(seen[cut:]), data.subset(unseen)


@pytest.fixture(scope="module")
def planted():
    return planted_groups(n_groups=3, n_users=72, pairs_per_user=80, d=16, beta=5.0, seed=1)


@pytest.fixture(scope="module")
def trained(planted):
    train, test, _ = _split(planted.data, 60)
    d = planted.data.items.shape[1]
    models = {"BT": BTModel(d, 1), "PAL-A": PALModel(d, 1, 60, 3, variant="A", seed=0), "PAL-B": PALModel(d, 1, 60, 3, variant="B", seed=0)}
    for m in models.values():
        fit(m, train, epochs=40, lr=3e-3, batch_size=256)
    return models, train, test


def _oracle(planted, data):
    # oracle prediction for each row of `data`: recompute from the planted truth
    pick = {(int(a), int(b), int(u)) for a, b, u in zip(data.a, data.b, data.user, strict=True)}
    full = planted.data
    mask = np.array([(int(a), int(b), int(u)) in pick for a, b, u in zip(full.a, full.b, full.user, strict=True)])
    return float((planted.oracle[mask] == full.label.numpy()[mask]).mean())


@pytest.mark.parametrize("variant", ["PAL-A", "PAL-B"])
def test_pal_recovers_planted_groups_and_beats_bt(planted, trained, variant):
    models, _, test = trained
    oracle = _oracle(planted, test)
    pal, bt = accuracy(models[variant], test), accuracy(models["BT"], test)
    assert pal >= oracle - 0.05, (pal, oracle)
    assert pal >= bt + 0.10, (pal, bt)  # the groups disagree: one reward cannot fit them all
    learned = models[variant].user_weights().argmax(1).detach().numpy()
    assert adjusted_rand_score(planted.group[:60], learned) > 0.9


def test_bt_matches_pal_when_everyone_agrees():
    one = planted_groups(n_groups=1, n_users=30, pairs_per_user=80, d=16, seed=2)
    train, test, _ = _split(one.data, 30)
    bt, pal = BTModel(16, 1), PALModel(16, 1, 30, 2, variant="A")
    fit(bt, train, epochs=40)
    fit(pal, train, epochs=40)
    assert abs(accuracy(bt, test) - accuracy(pal, test)) < 0.06


def test_few_shot_adapts_only_the_new_users(planted, trained):
    import copy

    models, _, _ = trained
    _, _, unseen = _split(planted.data, 60)
    # Unseen users' pairs: a shot pool and a test part.
    idx = torch.arange(len(unseen))
    pool, test = unseen.subset(idx[idx % 4 != 0]), unseen.subset(idx[idx % 4 == 0])
    base = models["PAL-A"]
    before = {k: v.clone() for k, v in base.state_dict().items()}
    acc = {}
    for shots in (1, 30):
        m = copy.deepcopy(base)
        assert m.add_users(12).tolist() == list(range(60, 72))
        adapt_new_users(m, _first_shots(pool, shots, seed=0), steps=300, lr=0.1)
        after = m.state_dict()
        for k, v in before.items():
            if k == "user_logits":
                assert torch.equal(after[k][:60], v[:60])  # seen users untouched
            else:
                assert torch.equal(after[k], v), k
        acc[shots] = accuracy(m, test)
    assert acc[30] > acc[1] + 0.05
    assert acc[30] >= _oracle(planted, test) - 0.08
    assert acc[30] >= accuracy(models["BT"], test) + 0.10
    assert all(torch.equal(v, base.state_dict()[k]) for k, v in before.items())  # deepcopy kept the base intact


def test_first_shots_takes_n_per_user(planted):
    shots = _first_shots(planted.data, 5, seed=0)
    counts = torch.bincount(shots.user)
    assert counts.tolist() == [5] * 72
