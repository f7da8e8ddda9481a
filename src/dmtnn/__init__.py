"""dmtnn: multi-task learning for digital rock segmentation and elastic moduli.

A reimplementation of DMTNN (J. Petroleum Sci. Eng., 2022): data, labels
(threshold segmentation and FEM), models, losses and training, driven by the
notebooks of the book.
"""

__version__ = "0.1.0"
