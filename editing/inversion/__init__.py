"""Inversions of a real image: recorded DDIM inversion (cached as an artifact) and null-text optimisation."""
