"""Steering generation: activation steering vectors, DPA directions, dose-response sweeps."""
from workbench.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "contrastive": ("ContrastiveSet", "attribute_set", "chosen_rejected_set", "contrastive_vectors", "fit_direction"),
    "decoding": ("DecodedRow", "decode_rows", "generate_rows", "side_by_side"),
    "vectors": ("SteeringVector", "active_hook_count", "steer"),
})
