"""UNPG: unified negative pair generation for face recognition (BMVC 2022), reproduced."""

__version__ = "0.1.0"
