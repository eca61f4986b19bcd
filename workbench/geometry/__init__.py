"""Geometry of representation spaces: relative representations, space comparison,
zero-shot stitching and cached 2-D projections. Imports no UI library."""
from workbench.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "anchors": ("ANCHOR_METHODS", "kmeans_labels", "select_anchors"),
    "compare": ("SpaceComparison", "compare_spaces", "jaccard_at_k", "knn_overlap", "mean_cosine", "mean_reciprocal_rank", "nearest_neighbours"),
    "inputs": ("Item", "encode_items", "encode_items_layers", "items_frame", "pair_items"),
    "projection": ("PROJECTION_METHODS", "Projection", "ProjectionCache", "project", "projection_key"),
    "relative": ("NORMALIZATIONS", "relative_encode", "relative_space"),
    "space": ("Space", "check_same_inputs"),
    "stitching": ("StitchingResult", "make_head", "stitch"),
    "votes": ("MAJORITY", "VOTE_PREFIX", "add_vote_columns", "dataset_judgments", "vote_columns"),
})
