"""Command line of the `unpg` package."""

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="unpg",
        description="UNPG: unified negative pair generation for face recognition (BMVC 2022), reproduced.",
    )
    parser.parse_args(argv)
    return 0
