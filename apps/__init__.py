"""Runnable entry points: the main app, notebook helpers (and later the standalone labeling server)."""
