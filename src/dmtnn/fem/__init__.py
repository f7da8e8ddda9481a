"""Fast, verified 2D effective elastic moduli of digital-rock images.

Linear elasticity on the pixel grid in the discretisation used in digital rock
physics since Garboczi's NIST codes (``elas2d``, Garboczi 1998, NIST IR 6269):

* every pixel is a bilinear 4-node square finite element (Q4) with nodes at the
  pixel corners, integrated exactly with 2 x 2 Gauss points;
* the displacement is ``u(x) = E . x + w(x)`` with an imposed macroscopic strain
  ``E`` and a periodic fluctuation ``w``; an ``H x W`` image therefore has
  ``H x W`` nodes (2 degrees of freedom each);
* pores have *exactly* zero stiffness.  Nodes touched only by pore pixels carry
  zero rows; they are masked out of the system (held at zero).  Floating grains
  and grains hinged at a single corner give rigid-body / mechanism modes that
  make the stiffness matrix singular, but the right-hand side is orthogonal to
  all of them (it is assembled from element forces ``K_e (E . x)``), so
  preconditioned CG started from zero converges on the consistent singular
  system (Kaasschieter 1988); the null-space components carry no stress.

The three unit macroscopic strains (``E_xx``, ``E_yy`` and engineering ``2 E_xy``)
are solved at once for a whole batch of images with a matrix-free, batched
preconditioned conjugate gradient (PCG) in PyTorch (CPU or CUDA).  The
preconditioner is the FFT "Green" preconditioner: the exact (pseudo-)inverse of
the periodic Q4 stiffness operator of a homogeneous reference medium (the stiffest
phase), which is block-diagonal in Fourier space (2 x 2 per wave vector) and
applied with ``torch.fft`` (Leuschner & Fritzen 2018; Ladecky et al. 2023).  Every
system (image x load case) stops on its own relative-residual criterion; converged
systems are frozen and removed from the working batch.

:func:`effective_stiffness_direct` solves the same discretisation with a float64
scipy.sparse direct solver (verification, timing of a classical CPU FEM), and
:func:`local_fields` returns the pixel strain, stress, von Mises stress and energy
density of one image under one unit macroscopic strain.

Units: moduli are in GPa throughout (the solver normalises internally).  Voigt
notation with engineering shear strain: ``sigma = C @ (e_xx, e_yy, 2 e_xy)``.
``x`` runs along image columns (axis -1), ``y`` along rows (axis -2).

Precision: float64 is the default on the CPU (``dtype=None``), float32 on CUDA
(the solver is bound by memory traffic, which float32 halves).
float32 PCG cannot go below its rounding floor (a true relative residual of about
1e-5), so its default tolerance is 1e-4, against 1e-5 for float64.  Every system
declared converged passes a true-residual check (``<= 2 tol``); failures get a
residual replacement, and stagnation or divergence (a tolerance below the rounding
floor) ends the system as not converged instead of running to ``max_iter``.
Iteration counts, accuracy and speed measured by ``bench/fem.py`` are in the book
(``book/methods/labels.md``).

Modules: ``_materials`` (quartz, 2D moduli, isotropic projection, HS bounds, phase
tables), ``_inputs`` (validation, default tolerances), ``_q4`` (element, operator,
preconditioner), ``_pcg`` (batched PCG), ``_direct`` (sparse direct solve),
``_fields`` (local fields) and ``_api`` (the entry points).

References
----------
Garboczi, E. J. (1998). Finite element and finite difference programs for
    computing the linear electric and elastic properties of digital images of
    random materials. NIST Interagency Report 6269.
Leuschner, M., & Fritzen, F. (2018). Fourier-accelerated nodal solvers (FANS)
    for homogenization problems. Computational Mechanics, 62, 359-392.
Ladecky, M., Leute, R. J., Falsafi, A., Pultarova, I., Pastewka, L., Junge, T.,
    & Zeman, J. (2023). An optimal preconditioned FFT-accelerated finite element
    solver for homogenization. Applied Mathematics and Computation, 446, 127835.
Mavko, G., Mukerji, T., & Dvorkin, J. (2009). The Rock Physics Handbook, 2nd ed.
    Cambridge University Press (quartz: K = 36.6 GPa, G = 45.0 GPa).
Torquato, S. (2002). Random Heterogeneous Materials. Springer (2D
    Hashin-Shtrikman bounds, Hill's equal-shear theorem).
"""

from __future__ import annotations

from dmtnn.fem._api import (
    FEMResult,
    effective_stiffness,
    elastic_moduli,
    elastic_moduli_batched,
)
from dmtnn.fem._direct import effective_stiffness_direct
from dmtnn.fem._fields import LocalFields, local_fields
from dmtnn.fem._materials import (
    QUARTZ_G,
    QUARTZ_K,
    hashin_shtrikman_upper_2d,
    isotropic_projection,
    isotropic_stiffness_2d,
    solid_moduli_2d,
)
from dmtnn.fem._q4 import element_stiffness

__all__ = [
    "QUARTZ_K",
    "QUARTZ_G",
    "FEMResult",
    "effective_stiffness",
    "effective_stiffness_direct",
    "elastic_moduli",
    "elastic_moduli_batched",
    "LocalFields",
    "local_fields",
    "solid_moduli_2d",
    "hashin_shtrikman_upper_2d",
    "isotropic_projection",
    "isotropic_stiffness_2d",
    "element_stiffness",
]
