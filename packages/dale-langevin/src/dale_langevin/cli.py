"""Command line of the `dale-langevin` package."""

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dale-langevin", description="Dale meets Langevin: multiplicative denoising diffusion, reproduced.")
    parser.parse_args(argv)
    return 0
