"""Command line of the `cdpo` package."""

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cdpo", description="cDPO: critical tokens and token-level DPO, reproduced."
    )
    parser.parse_args(argv)
    return 0
