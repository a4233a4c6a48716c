"""pysim: cross-dataset consistency of representational similarity between vision models."""

__version__ = "0.1.0"
