"""Interaction logs as researchers have them: tab/semicolon/space separated, Amazon-style
attribute tables with list columns, equal timestamps; and both ranking protocols."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.errors import ConfigError, DataError
from workbench.sae.interactions import read_interactions, sniff_separator

# users 1..3; user 1's last two items share time 30 (the file order decides), user 2's do not
LOG = [("user_id", "item_id", "time"),
       ("1", "B01", "10"), ("1", "B02", "20"), ("1", "B04", "30"), ("1", "B03", "30"),
       ("2", "B02", "5"), ("2", "B01", "6"), ("2", "B03", "7"),
       ("3", "B04", "1"), ("3", "B01", "2"), ("3", "B02", "3")]

# Amazon-like attributes: a category column named i_category, list-valued columns beside it
ATTRS = ('item_id,i_category,i_also_buy,i_title\n'
         'B01,Books,"[\'B02\', \'B03\']",A\n'
         'B02,Music,"[\'B01\']",B\n'
         'B03,Books,[],C\n'
         'B04,Toys,"[\'B01\', \'B02\']",D\n')


def _log(tmp_path, sep, name="log.txt"):
    path = tmp_path / name
    path.write_text("\n".join(sep.join(row) for row in LOG) + "\n", encoding="utf-8")
    return path


def _items(data, user):
    return [data.items[i - 1] for i in data.sequences[data.users.index(user)]]


@pytest.mark.parametrize(("sep", "name"), [("\t", "tab"), (",", "comma"), (";", "semicolon"), (" ", "space"), ("   ", "space")])
def test_separator_is_detected_from_the_header(tmp_path, sep, name):
    data = read_interactions(_log(tmp_path, sep))
    assert data.users == ["1", "2", "3"] and data.separator == (sep.strip(" ") or " ")
    assert _items(data, "2") == ["B02", "B01", "B03"]
    assert any(f"separator {name}" in n for n in data.notes)


def test_sniffing_prefers_real_separators_over_spaces_in_names():
    assert sniff_separator("user id,item id,time stamp") == ","
    assert sniff_separator("user_id\titem_id\ttime") == "\t"
    assert sniff_separator("user_id item_id time") == " "
    assert sniff_separator("one_column") == ","


def test_explicit_sep_and_a_wrong_one_get_hints_naming_real_options(tmp_path):
    path = _log(tmp_path, "\t")
    assert read_interactions(path, sep="tab").n_users == 3
    assert read_interactions(path, sep="\t", user_column="user_id").n_users == 3
    with pytest.raises(DataError, match="--sep") as err:
        read_interactions(path, sep=",", user_column="user_id")
    assert "one column" in str(err.value) and str(path) in str(err.value)
    renamed = tmp_path / "renamed.csv"
    renamed.write_text("who,what,when\n1,a,1\n1,b,2\n1,c,3\n", encoding="utf-8")
    with pytest.raises(DataError, match="--user-column NAME"):
        read_interactions(renamed)
    data = read_interactions(renamed, user_column="who", item_column="what", time_column="when")
    assert _items(data, "1") == ["a", "b", "c"]
    with pytest.raises(ConfigError, match="one character"):
        read_interactions(path, sep="::")


def test_equal_timestamps_keep_file_order_and_are_counted(tmp_path):
    data = read_interactions(_log(tmp_path, "\t"))
    assert _items(data, "1") == ["B01", "B02", "B04", "B03"]  # B04 and B03 share time 30: file order
    assert data.info["tied_interactions"] == 1 and data.info["tied_test_items"] == 1
    assert any("file order" in n and "1 of 3 users" in n for n in data.notes)
    swapped = tmp_path / "swapped.tsv"
    lines = ["\t".join(r) for r in LOG]
    lines[3], lines[4] = lines[4], lines[3]
    swapped.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert _items(read_interactions(swapped), "1") == ["B01", "B02", "B03", "B04"]


def test_amazon_style_attributes_use_the_category_column_and_skip_lists(tmp_path):
    attrs = tmp_path / "items.csv"
    attrs.write_text(ATTRS, encoding="utf-8")
    data = read_interactions(_log(tmp_path, "\t"), attrs)
    assert data.attributes == ["Books", "Music", "Toys"]
    assert data.item_attributes[data.items.index("B01") + 1] == frozenset({"Books"})
    assert any("column 'i_category'" in n for n in data.notes)
    assert any("list-valued columns ignored: i_also_buy" in n for n in data.notes)
    # a list-valued attribute column chosen on purpose is read as lists (nested lists flattened)
    nested = tmp_path / "nested.csv"
    nested.write_text('item_id;categories\nB01;"[[\'Books\', \'Fiction\']]"\nB02;[\'Music\']\n', encoding="utf-8")
    data = read_interactions(_log(tmp_path, "\t"), nested)
    assert data.item_attributes[data.items.index("B01") + 1] == frozenset({"Books", "Fiction"})
    broken = tmp_path / "broken.csv"
    broken.write_text("item_id,genre\nB01,['Books']\nB02,[Music]\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 3.*'genre'"):
        read_interactions(_log(tmp_path, "\t"), broken)


def test_attribute_file_without_a_category_column_names_the_option(tmp_path):
    attrs = tmp_path / "items.csv"
    attrs.write_text("item_id,price\nB01,3\n", encoding="utf-8")
    with pytest.raises(DataError, match="--attribute-column"):
        read_interactions(_log(tmp_path, ","), attrs)


# --- the two evaluation protocols -------------------------------------------------------------

def _chain_data(tmp_path, n_users=40, n_items=300, length=6):
    """Users with random histories of distinct items from a catalog of ``n_items``."""
    rng = np.random.default_rng(1)
    lines = ["user,item,timestamp"]
    for u in range(n_users):
        for t, item in enumerate(rng.choice(np.arange(1, n_items + 1), size=length, replace=False)):
            lines.append(f"{u},{item},{t}")
    path = tmp_path / "chain.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return read_interactions(path)


def test_sampled_protocol_draws_unseen_negatives_with_a_fixed_seed(tmp_path):
    from workbench.sae.sasrec import leave_one_out, rank_metrics, sample_negatives, sampled_rank_metrics

    data = _chain_data(tmp_path)
    negatives = sample_negatives(data.sequences, data.n_items, 99, seed=3)
    assert all(len(n) == 99 and len(set(n)) == 99 and not set(n) & set(s) and 0 not in n for n, s in zip(negatives, data.sequences, strict=True))
    again = sample_negatives(data.sequences, data.n_items, 99, seed=3)
    assert all((a == b).all() for a, b in zip(negatives, again, strict=True))
    assert len(sample_negatives(data.sequences, data.n_items, 10_000)[0]) == data.n_items - len(data.sequences[0])
    histories, targets = leave_one_out(data, "test")
    # a scorer that ranks every user's target first, then last
    scores = torch.rand(len(targets), data.n_items + 1)
    scores[torch.arange(len(targets)), torch.from_numpy(targets)] = 2.0
    perfect_full, perfect_sampled = rank_metrics(scores, targets, histories), sampled_rank_metrics(scores, targets, negatives)
    assert perfect_full.hr_at_10 == perfect_sampled.hr_at_10 == 1.0 and perfect_sampled.ndcg_at_10 == pytest.approx(1.0)
    scores[torch.arange(len(targets)), torch.from_numpy(targets)] = -1.0
    assert sampled_rank_metrics(scores, targets, negatives).hr_at_10 == 0.0
    # random scores: sampled HR@10 ≈ 10/100, full-ranking HR@10 ≈ 10/(unseen items) — the gap the protocols differ by
    rand = torch.rand(len(targets), data.n_items + 1, generator=torch.Generator().manual_seed(0))
    assert rank_metrics(rand, targets, histories).hr_at_10 < sampled_rank_metrics(rand, targets, negatives).hr_at_10


def test_popularity_baseline_breaks_ties_at_random(tmp_path):
    from workbench.sae.sasrec import popularity_scores

    data = _chain_data(tmp_path)
    scores = popularity_scores(data, 2, seed=0)
    counts = np.bincount(np.concatenate([s[:-2] for s in data.sequences]), minlength=data.n_items + 1)
    order = np.argsort(-scores[0].numpy(), kind="stable")
    assert (np.diff(counts[order]) <= 0).all()  # never reorders different counts
    assert len(set(scores[0].tolist())) == data.n_items + 1  # and no two items tie
