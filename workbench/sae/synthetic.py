"""A synthetic interaction dataset with planted concepts, shipped with the package.

Each item belongs to one category (a quarter also to a second); each user has a taste
profile over one or two categories and picks the next item from them with probability
``p_taste`` (popularity-weighted within a category), otherwise from the whole catalog.
Because the generating categories are known, tests measure whether SAE latents recover
them. ``python -m workbench.sae.synthetic <folder>`` rewrites the shipped files.
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

SHIPPED = Path(__file__).with_name("data") / "synthetic"
CATEGORIES = ("Jazz", "Metal", "Classical", "HipHop", "Country", "Electronic", "Folk", "Reggae")


def synthetic_paths() -> tuple[Path, Path, Path]:
    """(interactions.csv, items.csv, users.csv) of the shipped dataset."""
    return SHIPPED / "interactions.csv", SHIPPED / "items.csv", SHIPPED / "users.csv"


def generate(folder: str | Path, *, n_users: int = 1200, n_items: int = 400, min_len: int = 15, max_len: int = 40,
             p_taste: float = 0.85, seed: int = 7) -> None:
    """Write interactions.csv (user,item,timestamp), items.csv (item,title,categories), users.csv (user,profile)."""
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n_cat = len(CATEGORIES)
    primary = np.arange(n_items) % n_cat
    secondary = np.where(rng.random(n_items) < 0.25, (primary + rng.integers(1, n_cat, n_items)) % n_cat, -1)
    members = [np.flatnonzero((primary == c) | (secondary == c)) for c in range(n_cat)]
    popularity = rng.pareto(1.5, n_items) + 1.0
    with open(folder / "items.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["item", "title", "categories"])
        for i in range(n_items):
            cats = [CATEGORIES[primary[i]]] + ([CATEGORIES[secondary[i]]] if secondary[i] >= 0 else [])
            w.writerow([f"i{i:03d}", f"{CATEGORIES[primary[i]]} track {i:03d}", "|".join(cats)])
    with open(folder / "interactions.csv", "w", newline="", encoding="utf-8") as fi, \
            open(folder / "users.csv", "w", newline="", encoding="utf-8") as fu:
        wi, wu = csv.writer(fi), csv.writer(fu)
        wi.writerow(["user", "item", "timestamp"])
        wu.writerow(["user", "profile"])
        for u in range(n_users):
            liked = rng.choice(n_cat, size=1 + int(rng.random() < 0.4), replace=False)
            weights = rng.dirichlet(np.full(len(liked), 2.0))
            wu.writerow([f"u{u:04d}", "|".join(f"{CATEGORIES[c]}:{w:.2f}" for c, w in zip(liked, weights, strict=True))])
            t = 1_600_000_000 + int(rng.integers(0, 10_000_000))
            seen = np.zeros(n_items, dtype=bool)  # each item at most once per user, as with film ratings
            for _ in range(int(rng.integers(min_len, max_len + 1))):
                if rng.random() < p_taste:
                    pool = members[liked[rng.choice(len(liked), p=weights)]]
                else:
                    pool = np.arange(n_items)
                pool = pool[~seen[pool]]
                if not len(pool):
                    continue
                item = int(rng.choice(pool, p=popularity[pool] / popularity[pool].sum()))
                seen[item] = True
                wi.writerow([f"u{u:04d}", f"i{item:03d}", t])
                t += int(rng.integers(60, 86_400))


def read_profiles(path: str | Path | None = None) -> dict[str, dict[str, float]]:
    """User → {category: weight} ground truth of a generated dataset."""
    path = Path(path) if path else synthetic_paths()[2]
    with open(path, newline="", encoding="utf-8") as fh:
        return {row["user"]: {c: float(w) for c, w in (part.split(":") for part in row["profile"].split("|"))}
                for row in csv.DictReader(fh)}


if __name__ == "__main__":
    generate(sys.argv[1] if len(sys.argv) > 1 else SHIPPED)
