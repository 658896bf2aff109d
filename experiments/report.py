"""Regenerate the report for the current models: `python experiments/report.py [--data ...] [--profile ...]`.

Same as `python -m cnnclaims report`; see `--help` for options.
"""
import sys

from cnnclaims.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["report", *sys.argv[1:]]))
