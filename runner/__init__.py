"""Thin command-line entry points: python -m runner.<command>. Parse, build, call; no logic here."""
