import os
import sys
from pathlib import Path

import torch

# Tests share two cores with other jobs; one thread avoids oversubscription.
torch.set_num_threads(1)
os.environ.setdefault("REPROZOO_PROGRESS", "0")

# Lets test modules import the helper ``unpg_official_compare`` that lives beside them.
sys.path.insert(0, str(Path(__file__).parent))
