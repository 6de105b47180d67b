"""Command line of the `perpneg` package."""

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="perpneg",
        description="Perp-Neg: perpendicular negative prompts for diffusion, reproduced.",
    )
    parser.parse_args(argv)
    return 0
