"""Data: portal files, the synthetic eleven sandstones, the CT model, labels and the dataset.

Modules, each importing only those above it:

- :mod:`~dmtnn.data.resample`, :mod:`~dmtnn.data.synthetic`,
  :mod:`~dmtnn.data.threshold` (Otsu segmentation);
- :mod:`~dmtnn.data.ct` (CT forward model), :mod:`~dmtnn.data.drp` (portal files);
- :mod:`~dmtnn.data.real` (real Berea volumes and their windows);
- :mod:`~dmtnn.data.dataset` (slices, threshold labels, split);
- :mod:`~dmtnn.data.fem_labels` (porosity and moduli by FEM, of the dataset and
  of real windows).
"""

from dmtnn.data.dataset import Dataset, RockSlices, build_dataset, native_slices
from dmtnn.data.layout import SPLITS
from dmtnn.data.threshold import otsu_threshold, threshold_segment

__all__ = [
    "SPLITS",
    "Dataset",
    "RockSlices",
    "build_dataset",
    "native_slices",
    "otsu_threshold",
    "threshold_segment",
]
