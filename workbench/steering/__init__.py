"""Steering generation: activation steering vectors, DPA directions, dose-response sweeps."""
from workbench.steering.contrastive import ContrastiveSet, attribute_set, chosen_rejected_set, contrastive_vectors, fit_direction
from workbench.steering.decoding import DecodedRow, decode_rows, generate_rows, side_by_side
from workbench.steering.vectors import SteeringVector, active_hook_count, steer

__all__ = [
    "ContrastiveSet", "DecodedRow", "SteeringVector", "active_hook_count", "attribute_set", "chosen_rejected_set",
    "contrastive_vectors", "decode_rows", "fit_direction", "generate_rows", "side_by_side", "steer",
]
