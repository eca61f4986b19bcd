"""Sparse-autoencoder concept dictionaries (RecSAE) for recommenders and language models.

``training`` trains TopK/BatchTopK SAEs with sae-lens; ``sasrec`` is the recommender;
``concepts`` builds the concept dictionary; ``interventions`` edits latents; ``recsae`` runs
the whole recommender pipeline; ``lm`` does the same on a language model's residual stream.
"""
