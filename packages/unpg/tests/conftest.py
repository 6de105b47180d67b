import os

import torch

# Tests share two cores with other jobs; one thread avoids oversubscription.
torch.set_num_threads(1)
os.environ.setdefault("REPROZOO_PROGRESS", "0")
