"""Logit lens and latent-language analyses (compute only: no UI library is imported here)."""
from workbench.lenses.latent import FewCarriers, LatentResult, carried_by, run_latent
from workbench.lenses.lens import LensGrid, LensMetrics, lens_grid, lens_metrics, mean_ci, parity_gap
from workbench.lenses.preference import PreferenceLensResult, preference_lens
from workbench.lenses.tasks import KINDS, Example, LensTask, make_task
from workbench.lenses.token_sets import TokenSet, concept_token_set, display_token, word_token_set
from workbench.lenses.wordlists import WordTable, language_name, packaged_words, read_word_table

__all__ = [
    "KINDS", "Example", "FewCarriers", "LatentResult", "LensGrid", "LensMetrics", "LensTask", "PreferenceLensResult", "TokenSet", "WordTable",
    "carried_by", "concept_token_set", "display_token", "language_name", "lens_grid", "lens_metrics", "make_task", "mean_ci", "packaged_words",
    "parity_gap", "preference_lens", "read_word_table", "run_latent", "word_token_set",
]
