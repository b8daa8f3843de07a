"""medyate: memory-constrained on-device fine-tuning of CNNs (MeDyate)."""
__version__ = "0.1.0"
