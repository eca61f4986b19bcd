"""Geometry of representation spaces: relative representations, space comparison,
zero-shot stitching and cached 2-D projections. Imports no UI library."""
from workbench.geometry.anchors import ANCHOR_METHODS, kmeans_labels, select_anchors
from workbench.geometry.compare import (
    SpaceComparison,
    compare_spaces,
    jaccard_at_k,
    knn_overlap,
    mean_cosine,
    mean_reciprocal_rank,
    nearest_neighbours,
)
from workbench.geometry.inputs import Item, encode_items, encode_items_layers, items_frame, pair_items
from workbench.geometry.projection import PROJECTION_METHODS, Projection, ProjectionCache, project, projection_key
from workbench.geometry.relative import NORMALIZATIONS, relative_encode, relative_space
from workbench.geometry.space import Space, check_same_inputs
from workbench.geometry.stitching import StitchingResult, make_head, stitch
from workbench.geometry.votes import MAJORITY, VOTE_PREFIX, add_vote_columns, dataset_judgments, vote_columns

__all__ = [
    "ANCHOR_METHODS", "MAJORITY", "NORMALIZATIONS", "PROJECTION_METHODS", "Item", "Projection", "ProjectionCache", "Space", "SpaceComparison", "StitchingResult",
    "VOTE_PREFIX", "add_vote_columns", "dataset_judgments",
    "check_same_inputs", "compare_spaces", "encode_items", "encode_items_layers", "items_frame", "jaccard_at_k", "kmeans_labels", "knn_overlap",
    "make_head", "mean_cosine", "mean_reciprocal_rank", "nearest_neighbours", "pair_items", "project", "projection_key",
    "relative_encode", "relative_space", "select_anchors", "stitch", "vote_columns",
]
