"""Encoders (wav2vec2 by id or path, a small log-Mel CNN) and the classifier / projection heads."""
