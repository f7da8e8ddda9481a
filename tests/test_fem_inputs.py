"""Tests of dmtnn.fem's input validation and of its public docstrings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dmtnn import fem

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(images=np.full((4, 4), 2)), ValueError, "binary"),
        (dict(images=np.array([[0.0, np.nan], [1.0, 1.0]])), ValueError, "NaN"),
        (dict(images=np.ones((2, 3, 4, 4))), ValueError, "2-D"),
        (dict(images=np.ones(5)), ValueError, "2-D"),
        (dict(images=np.ones((0, 4, 4))), ValueError, "empty"),
        (dict(images="abc"), TypeError, "images"),
        (dict(images=np.ones((4, 4), dtype=complex)), TypeError, "dtype"),
        (dict(images=np.ones((4, 4)), plane="3d"), ValueError, "plane"),
        (dict(images=np.ones((4, 4)), tol=0.0), ValueError, "tol"),
        (dict(images=np.ones((4, 4)), max_iter=0), ValueError, "max_iter"),
        (dict(images=np.ones((4, 4)), dtype=torch.float16), TypeError, "dtype"),
        (dict(images=np.array([[0, 1], [2, 5]]), phase_moduli={0: (1, 1), 1: (2, 2)}),
         ValueError, r"phase ids \[2, 5\]"),
        (dict(images=np.ones((4, 4)), phase_moduli={1: (-1.0, 2.0)}), ValueError,
         "phase_moduli"),
        (dict(images=np.ones((4, 4)), phase_moduli=3.0), TypeError, "phase_moduli"),
        (dict(images=np.full((4, 4), 0.5), phase_moduli=[(1, 1), (2, 2)]), ValueError,
         "integer phase ids"),
    ],
)
def test_bad_inputs(kwargs, exc, match):
    kwargs = dict(kwargs)
    images = kwargs.pop("images")
    with pytest.raises(exc, match=match):
        fem.effective_stiffness(images, device="cpu", **kwargs)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(images=np.full((4, 4), 2)), ValueError, "binary"),
        (dict(images=np.ones((2, 3, 4, 4))), ValueError, "2-D"),
        (dict(images=np.ones((4, 4)), plane="3d"), ValueError, "plane"),
        (dict(images=np.array([[0, 1], [2, 5]]), phase_moduli={0: (1, 1), 1: (2, 2)}),
         ValueError, r"phase ids \[2, 5\]"),
    ],
)
def test_direct_bad_inputs(kwargs, exc, match):
    kwargs = dict(kwargs)
    images = kwargs.pop("images")
    with pytest.raises(exc, match=match):
        fem.effective_stiffness_direct(images, **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_requested_without_cuda():
    with pytest.raises(ValueError, match="CUDA is not available"):
        fem.effective_stiffness(np.ones((4, 4)), device="cuda")


def test_elastic_moduli_batched_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        fem.elastic_moduli_batched(np.ones((2, 4, 4)), batch_size=0, progress=False)


@pytest.mark.parametrize("func", [fem.effective_stiffness, fem.elastic_moduli])
def test_solver_docstrings_list_their_parameters(func):
    doc = func.__doc__
    assert doc and doc.startswith("Effective 2D")
    assert "{parameters}" not in doc
    for name in ("images", "phase_moduli", "plane", "tol", "max_iter", "device", "dtype",
                 "batch_size"):
        assert f"    {name} : " in doc, name
    assert "Returns\n    -------" in doc
