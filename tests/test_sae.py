"""RecSAE core: interaction reader, sae-lens training, SASRec, concept recovery on the shipped
planted-concept dataset, interventions, and the LM path on a tiny real checkpoint."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from workbench.data.types import Pair
from workbench.errors import ConfigError, DataError
from workbench.sae.interactions import read_interactions
from workbench.sae.job_configs import LMSAEJobConfig, RecSAEJobConfig
from workbench.sae.synthetic import CATEGORIES, read_profiles, synthetic_paths
from workbench.sae.training import SAESpec, evaluate_sae, load_sae, train_sae


def _write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


# --- reader -----------------------------------------------------------------------------

def test_reads_movielens_style_columns(tmp_path):
    ratings = _write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n1,10,4,300\n1,20,5,100\n1,30,3,200\n2,10,4,5\n")
    movies = _write(tmp_path / "movies.csv", "movieId,title,genres\n10,Alpha (1990),Comedy|Drama\n20,Beta,(no genres listed)\n30,Gamma,Horror\n")
    data = read_interactions(ratings, movies)
    assert data.users == ["1"] and data.dropped_users == 1  # user 2 has one interaction
    assert [data.items[i - 1] for i in data.sequences[0]] == ["20", "30", "10"]  # time order
    assert data.attributes == ["Comedy", "Drama", "Horror"]
    assert data.title(data.items.index("10") + 1) == "Alpha (1990)"
    assert data.item_attributes[data.items.index("20") + 1] == frozenset()
    assert data.attribute_matrix().shape == (4, 3)


@pytest.mark.parametrize(("text", "message"), [
    ("user,item,when\n1,2,3\n", "timestamp"),
    ("user,item,timestamp\n1,2,yesterday\n", "line 2"),
    ("", "empty"),
    ("user,item,timestamp\n", "No interaction rows"),
    ("user,item,timestamp\n1,,5\n", "Empty item id"),
])
def test_bad_interaction_files_name_the_problem(tmp_path, text, message):
    path = _write(tmp_path / "bad.csv", text)
    with pytest.raises(DataError, match=message) as err:
        read_interactions(path)
    assert str(path) in str(err.value)


def test_bad_attribute_files_and_options(tmp_path):
    ratings = _write(tmp_path / "r.csv", "user,item,timestamp\n1,a,1\n1,b,2\n1,c,3\n")
    with pytest.raises(DataError, match="listed twice"):
        read_interactions(ratings, _write(tmp_path / "dup.csv", "item,genres\na,X\na,Y\n"))
    with pytest.raises(DataError, match="UTF-8"):
        read_interactions(ratings, _write(tmp_path / "latin.csv", "item,genres\na,Caf\xe9\n", encoding="latin-1"))
    with pytest.raises(DataError, match="Did you mean 'genres'"):
        read_interactions(ratings, _write(tmp_path / "ok.csv", "item,genres\na,X\n"), attribute_column="genre")
    with pytest.raises(DataError, match="No such file"):
        read_interactions(tmp_path / "missing.csv")
    with pytest.raises(DataError, match="3 or more"):
        read_interactions(_write(tmp_path / "short.csv", "user,item,timestamp\n1,a,1\n"))


# --- SAE training with sae-lens -------------------------------------------------------------

def _planted(n=20_000, d=32, features=64, active=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    dictionary = torch.randn(features, d, generator=g)
    dictionary /= dictionary.norm(dim=1, keepdim=True)
    idx = torch.stack([torch.randperm(features, generator=g)[:active] for _ in range(n)])
    return (torch.rand(n, active, generator=g)[..., None] * 2 * dictionary[idx]).sum(1) + 0.5, dictionary


@pytest.mark.parametrize("architecture", ["topk", "batchtopk"])
def test_sae_trains_saves_and_loads_with_sae_lens(tmp_path, architecture):
    from sae_lens import SAE

    acts, _ = _planted()
    rows = []
    result = train_sae(acts, SAESpec(architecture=architecture, expansion=4, k=3, training_samples=120_000, batch_size=256),
                       folder=tmp_path / "sae", on_progress=lambda done, total, row: rows.append(row))
    assert result.metrics.fvu < 0.35, result.metrics  # the data is exactly 3-sparse; an untrained SAE sits near 1
    assert rows and rows[-1]["samples"] >= 120_000 and rows[-1]["dead_fraction"] < 0.5  # planted 3-sparse data keeps most latents alive
    checkpoints = sorted((tmp_path / "sae" / "checkpoints").iterdir())
    assert len(checkpoints) == 2 and all((c / "cfg.json").exists() for c in checkpoints)  # sae-lens's own checkpoints
    loaded = SAE.load_from_disk(str(tmp_path / "sae"))
    assert type(loaded).__name__ == ("TopKSAE" if architecture == "topk" else "JumpReLUSAE")
    again = evaluate_sae(load_sae(tmp_path / "sae"), acts[:2000])
    assert again.fvu < 0.4
    if architecture == "topk":
        assert again.l0 == pytest.approx(3.0)


def test_sae_spec_and_input_errors(tmp_path):
    acts, _ = _planted(n=2000)
    with pytest.raises(ConfigError, match="architecture"):
        train_sae(acts, SAESpec(architecture="relu"))
    with pytest.raises(ConfigError, match="k = 500"):
        train_sae(acts, SAESpec(expansion=2, k=500))
    with pytest.raises(ConfigError, match="Only 100 activation rows"):
        train_sae(acts[:100], SAESpec(batch_size=256, training_samples=1000))
    bad = acts.clone()
    bad[3, 3] = float("nan")
    with pytest.raises(ConfigError, match="non-finite"):
        train_sae(bad, SAESpec())
    with pytest.raises(Exception, match="cfg.json"):
        load_sae(tmp_path)


# --- the recommender pipeline on planted concepts ----------------------------------------------

@pytest.fixture(scope="module")
def recsae_run(tmp_path_factory):
    from workbench.sae.recsae import RecSAEResult, run_recsae

    torch.set_num_threads(1)  # deterministic enough on a shared CPU, and the run is small
    interactions, items, _ = synthetic_paths()
    folder = tmp_path_factory.mktemp("recsae") / "run"
    cfg = RecSAEJobConfig(interactions=str(interactions), attributes=str(items), max_len=30, d_model=32, epochs=30,
                          sae=SAESpec(expansion=4, k=4, training_samples=300_000, batch_size=256))
    summary = run_recsae(cfg, folder)
    return summary, RecSAEResult.load(folder)


def test_sasrec_beats_popularity(recsae_run):
    """Under both protocols: full ranking over unseen items and 1 positive + 99 sampled negatives."""
    summary, _ = recsae_run
    assert summary["test_hr@10"] > 1.5 * summary["test_popularity_hr@10"], summary
    assert summary["test_sampled_hr@10"] > summary["test_popularity_sampled_hr@10"], summary
    assert summary["test_hr@10"] < summary["test_sampled_hr@10"]  # 99 negatives are an easier field than the catalog
    assert 0 < summary["test_ndcg@10"] < summary["test_hr@10"] and summary["test_sampled_negatives"] == 99
    assert summary["warnings"] == []  # it beats popularity, so nothing to warn about


def test_cancelled_sasrec_resumes_in_its_stage_and_a_weak_one_is_flagged(tmp_path):
    """Issue 21 §4: a cancel at epoch 2 of 4 kept a half-trained model as if finished. Now it
    checkpoints, and the resumed training ends with exactly the weights of an uninterrupted run."""
    from workbench.sae.interactions import read_interactions
    from workbench.sae.sasrec import SASRecConfig, below_popularity_warning, train_sasrec

    torch.set_num_threads(1)
    interactions, _, _ = synthetic_paths()
    data = read_interactions(interactions)
    cfg = SASRecConfig(n_items=data.n_items, max_len=20, d_model=16, n_layers=1)
    whole, _, finished = train_sasrec(data, cfg, epochs=4, eval_every=2, batch_size=256)
    assert finished
    epochs: list[int] = []
    checkpoint = tmp_path / "checkpoint.pt"
    _, history, finished = train_sasrec(data, cfg, epochs=4, eval_every=2, batch_size=256, checkpoint=checkpoint,
                                        on_epoch=lambda e, row: epochs.append(e), should_stop=lambda: len(epochs) >= 2)
    assert not finished and checkpoint.exists() and [r["epoch"] for r in history] == [1, 2]
    resumed, history, finished = train_sasrec(data, cfg, epochs=4, eval_every=2, batch_size=256, checkpoint=checkpoint,
                                              on_epoch=lambda e, row: epochs.append(e))
    assert finished and epochs == [1, 2, 3, 4] and [r["epoch"] for r in history] == [1, 2, 3, 4]
    for name, weights in whole.state_dict().items():
        assert torch.equal(weights, resumed.state_dict()[name]), name
    warning = below_popularity_warning({"test_hr@10": 0.079, "test_popularity_hr@10": 0.092})
    assert warning and "does not beat popularity" in warning and "0.079" in warning and "0.092" in warning
    assert below_popularity_warning({"test_hr@10": 0.2, "test_popularity_hr@10": 0.092}) is None


def test_planted_concepts_are_recovered(recsae_run):
    """Every planted category has a latent whose concept is that category with held-out F1 ≥ 0.5.

    0.5 is the issue's bar; it is well above chance here: a predictor independent of the
    latent, at the same rates, scores the ``chance_f1`` asserted below (about 0.05–0.25).
    The latent must also track the hidden ground truth (users.csv), not only the observed
    shares: its activation at each user's final state separates users whose taste profile
    holds the category (AUROC ≥ 0.8).
    """
    summary, result = recsae_run
    confident = result.dictionary.confident(0.5)
    assert summary["sae_fvu"] < 0.3 and summary["sae_l0"] == pytest.approx(4.0)
    assert set(summary["concepts_covered"]) == set(CATEGORIES)
    assert all(c.f1 - c.chance_f1 >= 0.25 for c in confident)
    profiles = read_profiles()
    from workbench.sae.sasrec import user_states
    from workbench.sae.training import encode

    final = encode(result.sae, user_states(result.model, [s[:-1] for s in result.data.sequences])).numpy()
    for category in CATEGORIES:
        best = max((c for c in confident if c.concept == category), key=lambda c: c.f1)
        truth = np.array([category in profiles[u] for u in result.data.users])
        assert roc_auc_score(truth, final[:, best.latent]) >= 0.8, category


def test_interventions_move_recommendations_toward_and_away_from_the_concept(recsae_run):
    from workbench.sae.interventions import edited_states, intervene, top_n
    from workbench.sae.sasrec import user_states

    _, result = recsae_run
    best = result.dictionary.confident(0.5)[0]
    boost = result.intervene(best.latent, "boost", strength=2.0)
    ablate = result.intervene(best.latent, "ablate")
    assert boost.share_after - boost.share_before > 0.3, boost
    assert ablate.share_after < ablate.share_before, ablate
    histories = [s[:-1] for s in result.data.sequences[:50]]
    states = user_states(result.model, histories)
    assert torch.equal(top_n(result.model, edited_states(result.sae, states, best.latent, None), histories, 10),
                       top_n(result.model, states, histories, 10))  # no edit, no change
    with pytest.raises(ConfigError, match="Latent 10000"):
        result.intervene(10_000)
    with pytest.raises(ConfigError, match="out of range"):
        intervene(result.model, result.sae, result.data, histories, 10_000, best.concept)
    with pytest.raises(ConfigError, match="Unknown concept"):
        result.intervene(best.latent, concept="Polka")
    with pytest.raises(ConfigError, match="Unknown intervention"):
        result.intervene(best.latent, mode="flip")


def test_dictionary_table_and_saved_interventions(recsae_run):
    summary, result = recsae_run
    table = result.dictionary.table()
    assert list(table["f1"]) == sorted(table["f1"], reverse=True)
    assert {"concept", "enrichment", "p_value", "precision", "recall", "f1"} <= set(table.columns)
    assert result.interventions and {r["mode"] for r in result.interventions} == {"boost", "ablate"}
    assert summary["boost_share_after"] > summary["boost_share_before"]
    row = result.dictionary.get(int(table.loc[0, "latent"])).top_sequences[0]
    assert len(result.sequence_titles(row)) >= 1
    counts, edges, share = result.histogram(int(table.loc[0, "latent"]))
    assert counts.sum() > 0 and len(edges) == len(counts) + 1 and 0 < share < 1


def test_recsae_job_validation_rejects_bad_input(tmp_path):
    from workbench.sae.jobs import validate_recsae
    from workbench.settings import Settings

    s = Settings(home=tmp_path / "home")
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        validate_recsae({"interactions": "x.csv", "epoch": 3}, s)
    with pytest.raises(DataError, match="No such file"):
        validate_recsae({"interactions": str(tmp_path / "none.csv")}, s)
    ratings = _write(tmp_path / "r.csv", "user,item,timestamp\n" + "".join(f"{u},{i},{i}\n" for u in range(3) for i in range(5)))
    with pytest.raises(ConfigError, match="No item attributes"):
        validate_recsae({"interactions": str(ratings)}, s)
    interactions, items, _ = synthetic_paths()
    cfg = validate_recsae({"interactions": str(interactions), "attributes": str(items), "sae": {"k": 4}}, s)
    assert cfg["sae"]["k"] == 4 and cfg["epochs"] == 30


# --- the LM path ------------------------------------------------------------------------------

def test_lm_path_on_a_tiny_checkpoint(tmp_path, tiny_checkpoint):
    from workbench.models.loading import load_model
    from workbench.sae.lm import LMSAEResult, label_by_pole, run_lm_sae

    lm = load_model(str(tiny_checkpoint("llama")))
    pairs = [Pair(id=f"p{i}", prompt=f"Question {i}?", response_a=f"Short {i}.",
                  response_b=f"A much longer answer number {i}, with many more words in it than the other one.",
                  metadata={"a_pole": "concise", "b_pole": "verbose"}) for i in range(12)]
    with pytest.raises(DataError, match="preferred"):
        run_lm_sae(lm, pairs, 1, SAESpec(), tmp_path / "x")
    labelled = label_by_pole(pairs, "verbose")
    assert {p.preferred for p in labelled} == {"B"}
    with pytest.raises(ConfigError, match="out of range"):
        run_lm_sae(lm, labelled, 99, SAESpec(), tmp_path / "x")
    result = run_lm_sae(lm, labelled, 1, SAESpec(expansion=2, k=4, training_samples=8_000, batch_size=64), tmp_path / "lm",
                        n_latents_described=8)
    assert result.n_pairs == 12 and result.n_tokens > 12 * 4
    top = result.separating(8)
    assert all(0.0 <= c.auroc <= 1.0 for c in result.latents)
    assert all(len(c.logits_up) == 8 and len(c.logits_down) == 8 for c in top)
    assert any(c.top_texts for c in top) and all(sum(c.histogram[0]) > 0 for c in top)
    again = LMSAEResult.load(tmp_path / "lm")
    assert again.separating(1)[0].latent == top[0].latent
    assert load_sae(tmp_path / "lm" / "sae").cfg.d_sae == 2 * lm.model.config.hidden_size


def test_the_sae_group_is_an_sae_spec_checked_by_the_job_config():
    cfg = RecSAEJobConfig.from_dict({"interactions": "i.csv", "top_k": 5, "sae": {"k": 3}})
    assert isinstance(cfg.sae, SAESpec) and (cfg.sae.k, cfg.sae.expansion, cfg.top_k) == (3, 8, 5)
    assert RecSAEJobConfig.from_dict(cfg.to_dict()) == cfg  # what config.yaml / config.json store reads back the same
    with pytest.raises(ConfigError, match="did you mean 'k'"):
        RecSAEJobConfig.from_dict({"interactions": "i.csv", "sae": {"kk": 3}})
    with pytest.raises(ConfigError, match="architecture must be one of topk, batchtopk; got 'top-k'"):
        LMSAEJobConfig.from_dict({"model": "m", "dataset": "d", "sae": {"architecture": "top-k"}})
    with pytest.raises(ConfigError, match="training_samples ≥ batch_size"):  # SAESpec's own rules run inside the job config's
        RecSAEJobConfig.from_dict({"interactions": "i.csv", "sae": {"training_samples": 10}})
    with pytest.raises(ConfigError, match="top_k must be at least 1"):
        RecSAEJobConfig.from_dict({"interactions": "i.csv", "top_k": 0})
    with pytest.raises(ConfigError, match="No interaction file"):
        RecSAEJobConfig.from_dict({})
