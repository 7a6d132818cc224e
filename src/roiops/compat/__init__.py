"""Compatibility layers: each framework's names, defaults, dtypes and numbers, bit for bit."""
