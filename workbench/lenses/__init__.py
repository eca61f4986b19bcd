"""Logit lens and latent-language analyses (compute only: no UI library is imported here)."""
from workbench.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "latent": ("FewCarriers", "LatentResult", "carried_by", "run_latent"),
    "lens": ("LensGrid", "LensMetrics", "lens_grid", "lens_metrics", "mean_ci", "parity_gap"),
    "preference": ("PreferenceLensResult", "preference_lens"),
    "tasks": ("KINDS", "Example", "LensTask", "make_task"),
    "token_sets": ("TokenSet", "concept_token_set", "display_token", "word_token_set"),
    "wordlists": ("WordTable", "language_name", "packaged_words", "read_word_table"),
})
