"""Steering generation: activation steering vectors, DPA directions, dose-response sweeps."""
from workbench.lazy import lazy_exports

_EXPORTS = {
    "ContrastiveSet": "contrastive",
    "attribute_set": "contrastive",
    "chosen_rejected_set": "contrastive",
    "contrastive_vectors": "contrastive",
    "fit_direction": "contrastive",
    "DecodedRow": "decoding",
    "decode_rows": "decoding",
    "generate_rows": "decoding",
    "side_by_side": "decoding",
    "SteeringVector": "vectors",
    "active_hook_count": "vectors",
    "steer": "vectors",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
