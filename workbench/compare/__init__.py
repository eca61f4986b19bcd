"""Compare two checkpoints: the model-diff core (``diff``) and the ``workbench compare`` command (``cli``)."""
