"""Command line of the `radd` package."""

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="radd",
        description="RADD: reparameterized absorbing discrete diffusion (ICLR 2025), reproduced.",
    )
    parser.parse_args(argv)
    return 0
