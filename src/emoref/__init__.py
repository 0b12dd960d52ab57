"""emoref: IPR, EPR and their baselines for ambiguous speech emotion recognition."""

__version__ = "0.1.0"
