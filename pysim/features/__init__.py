"""Feature extraction: one model's features on one dataset's splits (pysim.features.extract)."""
