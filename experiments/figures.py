"""Regenerate the figures for the current models: `python experiments/figures.py [--data ...] [--profile ...]`.

Same as `python -m cnnclaims figures`; see `--help` for options.
"""
import sys

from cnnclaims.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["figures", *sys.argv[1:]]))
