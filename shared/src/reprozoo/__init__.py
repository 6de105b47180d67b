"""reprozoo: the thin core shared by the per-paper reproduction packages.

Modules: `data`, `runtime`, `metrics`, `checkpoint`, `results`, `config`, `bench`, `cli`
(see the README of this package for the API).
"""

__version__ = "0.1.0"
