"""Command line of the `petal` package."""

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="petal",
        description="PETAL: lifelong test-time adaptation (Brahma & Rai, CVPR 2023), reproduced.",
    )
    parser.parse_args(argv)
    return 0
