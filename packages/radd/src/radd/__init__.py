"""RADD: reparameterized absorbing discrete diffusion (ICLR 2025), reproduced."""

__version__ = "0.1.0"
