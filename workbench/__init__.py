"""Preference Workbench: inspect, label, steer and fine-tune preferences in local models."""
__version__ = "0.1.0"
