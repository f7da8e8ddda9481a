"""Build (or verify) a profile's dataset: ``python -m dmtnn.data --profile quick``.

``python -m dmtnn.data --rock-table FILE`` writes the table of the eleven
sandstones (:func:`dmtnn.data.synthetic.rock_table`, the roles of the default
configuration) to FILE instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from dmtnn.config import PROFILES, DataConfig, load_profile
from dmtnn.data.dataset import build_dataset, summary
from dmtnn.data.synthetic import rock_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dmtnn.data", description=__doc__)
    parser.add_argument("--profile", choices=list(PROFILES))
    parser.add_argument("--rock-table", type=Path, metavar="FILE",
                        help="write the table of the rocks (Markdown) to FILE and stop")
    args = parser.parse_args(argv)
    if args.rock_table:
        d = DataConfig()
        roles = {**dict.fromkeys(d.train_rocks, "train"),
                 **dict.fromkeys(d.heldout_rocks, "held out"),
                 **dict.fromkeys(d.unseen_rocks, "unseen")}
        args.rock_table.parent.mkdir(parents=True, exist_ok=True)
        args.rock_table.write_text(rock_table(roles))
        return 0
    if not args.profile:
        parser.error("give --profile (or --rock-table FILE)")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    t0 = time.perf_counter()
    ds = build_dataset(load_profile(args.profile))
    print(summary(ds).round(3).to_string(index=False))
    print(f"dataset ready in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
