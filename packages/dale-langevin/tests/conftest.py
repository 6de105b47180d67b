"""Keep every test single-threaded: the suite shares two cores with other work."""

import os

import torch

os.environ.setdefault("REPROZOO_PROGRESS", "0")
torch.set_num_threads(1)
