"""Build (or verify) a profile's dataset: ``python -m dmtnn.data --profile quick``."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from dmtnn.config import PROFILES, load_profile
from dmtnn.data.dataset import build_dataset, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dmtnn.data", description=__doc__)
    parser.add_argument("--profile", required=True, choices=list(PROFILES))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    t0 = time.perf_counter()
    ds = build_dataset(load_profile(args.profile))
    print(summary(ds).round(3).to_string(index=False))
    print(f"dataset ready in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
