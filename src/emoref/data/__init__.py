"""Corpora -> Manifest; ambiguity and k-fold splits; audio decoding, features and augmentation."""

from emoref.data.manifest import DataError, Manifest, Utterance

__all__ = ["DataError", "Manifest", "Utterance"]
