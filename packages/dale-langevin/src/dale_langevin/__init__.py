"""Dale meets Langevin: multiplicative denoising diffusion, reproduced."""

__version__ = "0.1.0"
