"""Data: portal files, the synthetic eleven sandstones, the CT model, labels and the dataset."""

from dmtnn.data.dataset import SPLITS, Dataset, RockSlices, build_dataset, native_slices
from dmtnn.data.labels import otsu_threshold, threshold_segment

__all__ = [
    "SPLITS",
    "Dataset",
    "RockSlices",
    "build_dataset",
    "native_slices",
    "otsu_threshold",
    "threshold_segment",
]
