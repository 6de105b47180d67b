"""PETAL: lifelong test-time adaptation (Brahma & Rai, CVPR 2023), reproduced."""

__version__ = "0.1.0"
