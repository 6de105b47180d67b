"""cDPO: critical tokens and token-level DPO, reproduced."""

__version__ = "0.1.0"
