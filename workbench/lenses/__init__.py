"""Logit lens and latent-language analyses (compute only: no UI library is imported here)."""
from workbench.lazy import lazy_exports

_EXPORTS = {
    "FewCarriers": "latent",
    "LatentResult": "latent",
    "carried_by": "latent",
    "run_latent": "latent",
    "LensGrid": "lens",
    "LensMetrics": "lens",
    "lens_grid": "lens",
    "lens_metrics": "lens",
    "mean_ci": "lens",
    "parity_gap": "lens",
    "PreferenceLensResult": "preference",
    "preference_lens": "preference",
    "KINDS": "tasks",
    "Example": "tasks",
    "LensTask": "tasks",
    "make_task": "tasks",
    "TokenSet": "token_sets",
    "concept_token_set": "token_sets",
    "display_token": "token_sets",
    "word_token_set": "token_sets",
    "WordTable": "wordlists",
    "language_name": "wordlists",
    "packaged_words": "wordlists",
    "read_word_table": "wordlists",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
