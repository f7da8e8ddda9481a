"""The book's result tables and verdicts: scores of predictions set out per method,
rock, split or strategy, beside the paper's numbers, and the words that judge them.

The computation stays where it is (the scores in :mod:`dmtnn.metrics`, paired
differences, intervals and verdicts in :mod:`dmtnn.statistics`, the networks
and their predictions in :mod:`dmtnn.multitask` and :mod:`dmtnn.segmentation`,
the REV curves in :mod:`dmtnn.rev`); the paper's numbers come from
:mod:`dmtnn.comparison`. Here:

- regression (notebooks 05 to 08), every score per seed and as mean and
  standard deviation over seeds, R2 beside RMSE and MAE in physical units
  (:data:`UNITS`), training scores beside test scores where given:
  :func:`seed_predictions` (the predictions of runs over seeds),
  :func:`seed_table`, :func:`r2_table`, :func:`r2_summary`,
  :func:`rock_table`, :func:`scores_by_split`, :func:`strategy_table`;
- comparisons of two models (notebooks 05 to 08): :func:`difference_table`,
  the paired difference of each score with its cluster bootstrap interval and
  verdict, :func:`relative_difference` (the same as a fraction of b's score,
  judged against a margin such as the paper's "more than 10 % lower"),
  :func:`difference_text` (a difference and its interval as text, for glue
  and prose) and :func:`overall_verdict` (a reading tested on several cases);
- segmentation (notebooks 04 and 07): :func:`segmentation_table`,
  :func:`paper_comparison`, :func:`scanner_table` (the same slices from other
  scanners);
- REV (notebooks 02 and 03): :func:`rev_table`, :func:`moduli_rev_table`.

Models are compared by paired differences only, never by whether two
per-model intervals overlap (see :mod:`dmtnn.statistics` for why).
"""

from dmtnn.reports._comparisons import (
    difference_table,
    difference_text,
    overall_verdict,
    relative_difference,
)
from dmtnn.reports._regression import (
    SEED_SCORES,
    UNITS,
    Predictions,
    r2_summary,
    r2_table,
    rock_table,
    scores_by_split,
    seed_predictions,
    seed_table,
    strategy_table,
)
from dmtnn.reports._segmentation_rev import (
    moduli_rev_table,
    paper_comparison,
    rev_table,
    scanner_table,
    segmentation_table,
)

__all__ = [
    "UNITS",
    "SEED_SCORES",
    "Predictions",
    "seed_predictions",
    "seed_table",
    "r2_table",
    "r2_summary",
    "rock_table",
    "scores_by_split",
    "strategy_table",
    "difference_table",
    "relative_difference",
    "difference_text",
    "overall_verdict",
    "segmentation_table",
    "paper_comparison",
    "scanner_table",
    "rev_table",
    "moduli_rev_table",
]
