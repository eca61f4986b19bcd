"""Spaces from real checkpoints: pairs → inputs → activations → spaces, and the central claim
of relative representations on the embedded LM and sentence embedder."""
from __future__ import annotations

import numpy as np
import pytest

from workbench.activations import ActivationCache
from workbench.data.types import Pair
from workbench.errors import ConfigError, DataError
from workbench.geometry import (
    compare_spaces,
    encode_items,
    encode_items_layers,
    items_frame,
    pair_items,
    relative_space,
    select_anchors,
    stitch,
)
from workbench.models.loading import load_model

TOPICS = {
    "cooking": ["Simmer the onions in butter until golden.", "Knead the dough for ten minutes, then let it rise.",
                "Season the soup with salt, pepper and fresh thyme.", "Roast the vegetables at two hundred degrees.",
                "Whisk the eggs with sugar until pale and fluffy.", "Slice the garlic thinly and fry it in olive oil.",
                "Bake the bread until the crust sounds hollow.", "Marinate the chicken overnight in yogurt and spices.",
                "Stir the risotto slowly while adding warm stock.", "Grate some parmesan over the pasta before serving.",
                "Blanch the beans in boiling water for two minutes.", "Let the cake cool before you add the icing."],
    "sport": ["The striker scored twice in the second half.", "She won the marathon in record time.",
              "The goalkeeper saved a penalty in the final minute.", "Our team lost the match after extra time.",
              "He trains at the track every morning before work.", "The referee showed a red card to the defender.",
              "The tennis final went to five sets.", "They qualified for the world cup last night.",
              "The cyclist attacked on the last mountain climb.", "The coach changed tactics at half time.",
              "The swimmer broke the national record in the relay.", "Fans cheered as the ball hit the back of the net."],
    "weather": ["Heavy rain is expected across the north tomorrow.", "A cold front will bring snow to the hills.",
                "The afternoon will be sunny with light winds.", "Thunderstorms may cause flooding in low areas.",
                "Temperatures will drop below freezing tonight.", "Fog will clear by midday, leaving blue skies.",
                "A heatwave is forecast for the end of the week.", "Strong gusts could bring down trees near the coast.",
                "Showers will spread east during the evening.", "Frost is likely in sheltered valleys overnight.",
                "The humidity will make it feel warmer than it is.", "Hail fell briefly during the storm this afternoon."],
    "computing": ["Restart the server after installing the update.", "The function returns a list of sorted integers.",
                  "Compile the program with optimisations turned on.", "The database query timed out under heavy load.",
                  "Push your branch and open a pull request.", "The laptop's battery drains quickly when gaming.",
                  "Clear the browser cache if the page looks broken.", "The script parses the log file line by line.",
                  "Increase the memory limit of the container.", "The compiler reported a missing semicolon.",
                  "Back up your files before reinstalling the system.", "The network card stopped responding after sleep."],
}


def _pairs(n: int = 6) -> list[Pair]:
    return [Pair(prompt=f"Question {i}?", response_a=f"A short answer {i}.", response_b=f"A much longer and more detailed answer number {i}.",
                 preferred="A" if i % 2 else None, metadata={"attribute": "verbosity", "a_pole": "concise", "b_pole": "verbose"})
            for i in range(n)]


def test_pair_items_carry_keys_and_metadata_for_colouring():
    pairs = _pairs(4)
    items = pair_items(pairs)
    assert [it.key for it in items[:2]] == [f"{pairs[0].id}:A", f"{pairs[0].id}:B"]
    frame = items_frame(items)
    assert frame.loc[0, "attribute_pole"] == "verbosity:concise" and frame.loc[1, "pole"] == "verbose"
    assert frame["role"].tolist()[:4] == ["unlabeled", "unlabeled", "chosen", "rejected"]
    assert "a_pole" not in frame.columns


def test_encode_items_gives_one_space_per_layer_from_the_cache(tmp_path, tiny_checkpoint):
    lm = load_model(tiny_checkpoint("llama"))
    items = pair_items(_pairs())
    cache = ActivationCache(tmp_path / "cache")
    spaces = encode_items_layers(lm, items, pooling="mean", cache=cache)
    assert sorted(spaces) == [0, 1, 2] and spaces[2].vectors.shape == (12, 32) and spaces[2].keys == tuple(it.key for it in items)
    assert spaces[1].info["chat"] is True  # prompt + response through the chat template, pooled over the response
    last = encode_items(lm, items, layer=-1, pooling="mean", cache=cache)
    assert last.info["layer"] == 2 and np.allclose(last.vectors, spaces[2].vectors, atol=1e-5)
    assert encode_items(lm, items, layer=-1, pooling="mean", cache=cache).vectors.shape == (12, 32)
    with pytest.raises(ConfigError, match=r"Layer 3 is out of range .* valid layers are 0\.\.2"):
        encode_items(lm, items, layer=3)
    with pytest.raises(DataError, match="no inputs"):
        encode_items(lm, [], layer=1)


@pytest.fixture(scope="module")
def embedder():
    from workbench.models.embedded import embedder_path

    return load_model(embedder_path(), name="all-MiniLM-L6-v2")


def test_lm_and_embedder_agree_in_relative_space(demo_lm, embedder):
    """The paper's claim at toy scale: two unrelated encoders of the same sentences agree in
    relative space (far above chance) and a head stitched across them keeps its accuracy."""
    from workbench.geometry import Item

    items = [Item(key=f"{topic}:{i}", text=text, metadata={"topic": topic}) for topic, texts in TOPICS.items() for i, text in enumerate(texts)]
    lm_space = encode_items(demo_lm, items, layer=10, pooling="mean")
    emb_space = encode_items(embedder, items, layer=-1, pooling="mean")
    anchors = select_anchors(emb_space, 16, "farthest")
    absolute = compare_spaces(lm_space, emb_space, k=5)
    assert absolute.mrr is None  # 576 vs 384 dimensions: no shared coordinates at all
    relative = compare_spaces(relative_space(lm_space, anchors), relative_space(emb_space, anchors), k=5)
    chance_mrr = np.mean([np.sum(1 / np.arange(1, 49)) / 48])
    assert relative.mrr > 3 * chance_mrr and relative.jaccard > 0.2
    result = stitch(lm_space, emb_space, [it.metadata["topic"] for it in items], anchors, test_fraction=0.5)
    assert result.accuracy("relative", "B", "B") > 0.8
    assert result.accuracy("relative", "A", "B") > 0.6 > result.chance
