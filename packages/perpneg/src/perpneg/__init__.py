"""Perp-Neg: perpendicular negative prompts for diffusion, reproduced."""

__version__ = "0.1.0"
