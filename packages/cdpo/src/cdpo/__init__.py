"""cDPO: critical tokens and token-level DPO, reproduced."""

__version__ = "0.1.0"

from transformers.utils import logging as _hf_logging

# Model folders are loaded and saved dozens of times per run; their progress bars are noise.
_hf_logging.disable_progress_bar()
