"""The Q4 pixel element, the matrix-free periodic Q4 operator and the FFT Green preconditioner.

Every pixel is a bilinear 4-node square element with nodes at its corners, integrated
exactly with 2 x 2 Gauss points.  Fields are periodic on the H x W node grid; node
(i, j) is the top-left corner of pixel (i, j).
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["element_stiffness"]

# Local node a sits at pixel-corner offset (di, dj) = _OFFSETS[a]; x = j, y = i.
_OFFSETS = ((0, 0), (0, 1), (1, 0), (1, 1))


def _b_matrix(x: float, y: float) -> np.ndarray:
    """Strain-displacement matrix (3 x 8) of the unit Q4 element at (x, y)."""
    dndx = np.array([-(1 - y), (1 - y), -y, y])
    dndy = np.array([-(1 - x), -x, (1 - x), x])
    B = np.zeros((3, 8))
    B[0, 0::2] = dndx
    B[1, 1::2] = dndy
    B[2, 0::2] = dndy
    B[2, 1::2] = dndx
    return B


def element_stiffness() -> tuple[np.ndarray, np.ndarray]:
    """Unit-square Q4 element matrices ``(K_kappa, K_mu)``, each 8 x 8.

    The element stiffness of a pixel with 2D moduli (kappa, mu) is
    ``kappa * K_kappa + mu * K_mu`` (exact 2 x 2 Gauss integration).  DOF order:
    ``(u_x, u_y)`` of the corners (i, j), (i, j+1), (i+1, j), (i+1, j+1).
    """
    g = (0.5 - 0.5 / math.sqrt(3.0), 0.5 + 0.5 / math.sqrt(3.0))
    d_kappa = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    d_mu = np.array([[1.0, -1.0, 0.0], [-1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    kk = np.zeros((8, 8))
    km = np.zeros((8, 8))
    for x in g:
        for y in g:
            B = _b_matrix(x, y)
            kk += 0.25 * B.T @ d_kappa @ B
            km += 0.25 * B.T @ d_mu @ B
    return kk, km


class _Q4Operator:
    """Matrix-free periodic Q4 stiffness operator and FFT Green preconditioner.

    Fields are shaped (S, 2, H, W): S systems, (u_x, u_y) on the H x W nodes.
    """

    def __init__(self, H: int, W: int, kappa0: float, mu0: float, device, dtype) -> None:
        kk, km = element_stiffness()
        self.H, self.W = H, W
        self.device, self.dtype = device, dtype
        self.minv = self._green(kk, km, kappa0, mu0)

    def _green(self, kk, km, kappa0, mu0) -> torch.Tensor:
        """(2, 2, H, W//2+1) complex pseudo-inverse symbol of the reference operator."""
        H, W = self.H, self.W
        ki = np.fft.fftfreq(H)[:, None] * 2 * np.pi
        kj = np.fft.rfftfreq(W)[None, :] * 2 * np.pi
        ke = kappa0 * kk + mu0 * km
        phi = np.stack([np.exp(1j * (di * ki + dj * kj)) for di, dj in _OFFSETS], 0)
        # M[c, d] = sum_ab conj(phi_a) Ke[2a+c, 2b+d] phi_b
        ke4 = ke.reshape(4, 2, 4, 2)
        M = np.einsum("ahw,acbd,bhw->cdhw", np.conj(phi), ke4, phi)
        det = (M[0, 0] * M[1, 1] - M[0, 1] * M[1, 0]).real
        scale = np.abs(M).max()
        ok = det > 1e-12 * scale**2
        inv = np.zeros_like(M)
        safe = np.where(ok, det, 1.0)
        inv[0, 0] = np.where(ok, M[1, 1] / safe, 0)
        inv[1, 1] = np.where(ok, M[0, 0] / safe, 0)
        inv[0, 1] = np.where(ok, -M[0, 1] / safe, 0)
        inv[1, 0] = np.where(ok, -M[1, 0] / safe, 0)
        cdtype = torch.complex128 if self.dtype == torch.float64 else torch.complex64
        return torch.tensor(inv, device=self.device, dtype=cdtype)

    def apply(
        self, u: torch.Tensor, kq: torch.Tensor, mq: torch.Tensor, s12: torch.Tensor
    ) -> torch.Tensor:
        """K u for fields u (S, 2, H, W); per-system fields (S, 1, H, W) of the pixels'
        ``kq = kappa / 4``, ``mq = mu / 4`` and ``s12 = (kappa + 2 mu) / 12``.

        Uses the exact split of the fully integrated Q4 matrix into its centre
        (one-point) part and its hourglass part,
        ``K_e = B_c^T D B_c + (kappa + 2 mu) / 12 * h h^T`` per displacement
        component, with ``h = (1, -1, -1, 1)`` over the corners (i, j), (i, j+1),
        (i+1, j), (i+1, j+1).
        """
        S, _, H, W = u.shape
        up = torch.nn.functional.pad(u, (0, 1, 0, 1), mode="circular")
        top = up[..., :-1, :]
        bot = up[..., 1:, :]
        dxt = top[..., 1:] - top[..., :-1]  # u1 - u0
        dxb = bot[..., 1:] - bot[..., :-1]  # u3 - u2
        hour = dxb - dxt  # u0 - u1 - u2 + u3
        mx2 = dxt + dxb  # 2 d/dx at the centre
        my2 = torch.add(hour, bot[..., :-1] - top[..., :-1], alpha=2.0)  # 2 d/dy
        e1 = mx2[:, 0:1]  # 2 e_xx
        e2 = my2[:, 1:2]  # 2 e_yy
        trh = kq * (e1 + e2)  # (s_xx + s_yy) / 4
        dvh = mq * (e1 - e2)  # (s_xx - s_yy) / 4
        shh = mq * (my2[:, 0:1] + mx2[:, 1:2])  # s_xy / 2
        a = trh + dvh  # s_xx / 2
        b = trh - dvh  # s_yy / 2
        w = torch.empty(S, 6, H, W, dtype=u.dtype, device=u.device)
        torch.sub(a, shh, out=w[:, 0:1])  # sm = alpha - beta with alpha = (s_xx, s_xy)/2,
        torch.sub(shh, b, out=w[:, 1:2])  #                      beta = (s_xy, s_yy)/2
        torch.add(a, shh, out=w[:, 2:3])  # sp = alpha + beta
        torch.add(b, shh, out=w[:, 3:4])
        torch.mul(s12, hour, out=w[:, 4:6])  # hourglass forces
        sm, sp, hh = w[:, 0:2], w[:, 2:4], w[:, 4:6]
        # corner forces c0 = hh - sp, c1 = sm - hh, c2 = -(sm + hh), c3 = sp + hh,
        # scattered to node (i, j) + offset of the corner
        c23 = torch.empty(S, 4, H, W, dtype=u.dtype, device=u.device)
        torch.add(sm, hh, out=c23[:, 0:2])
        c23[:, 0:2].neg_()
        torch.add(sp, hh, out=c23[:, 2:4])
        c23 = torch.roll(c23, 1, -2)
        t0 = (hh - sp).add_(c23[:, :2])
        t1 = (sm - hh).add_(c23[:, 2:])
        return t0.add_(torch.roll(t1, 1, -1))

    def precondition(self, r: torch.Tensor) -> torch.Tensor:
        rh = torch.fft.rfft2(r)
        m = self.minv
        zx = m[0, 0] * rh[:, 0] + m[0, 1] * rh[:, 1]
        zy = m[1, 0] * rh[:, 0] + m[1, 1] * rh[:, 1]
        return torch.fft.irfft2(torch.stack([zx, zy], 1), s=(self.H, self.W))


def _element_stress(kap, mu, loads):
    """Element stresses D_e E for the unit loads; shapes (S, 3, H, W)."""
    exx, eyy, gxy = loads[:, 0, None, None], loads[:, 1, None, None], loads[:, 2, None, None]
    k = kap[:, 0]
    m = mu[:, 0]
    sxx = (k + m) * exx + (k - m) * eyy
    syy = (k - m) * exx + (k + m) * eyy
    sxy = m * gxy
    return torch.stack([sxx, syy, sxy], 1)


def _center_strain(u: torch.Tensor) -> torch.Tensor:
    """Element-centre strain (exx, eyy, gxy) of the fluctuation, (S, 3, H, W)."""
    u01 = torch.roll(u, -1, dims=-1)
    u10 = torch.roll(u, -1, dims=-2)
    u11 = torch.roll(u10, -1, dims=-1)
    ux0, uy0, ux1, uy1 = u[:, 0], u[:, 1], u01[:, 0], u01[:, 1]
    ux2, uy2, ux3, uy3 = u10[:, 0], u10[:, 1], u11[:, 0], u11[:, 1]
    exx = 0.5 * ((ux1 - ux0) + (ux3 - ux2))
    eyy = 0.5 * ((uy2 - uy0) + (uy3 - uy1))
    gxy = 0.5 * ((ux2 - ux0) + (ux3 - ux1)) + 0.5 * ((uy1 - uy0) + (uy3 - uy2))
    return torch.stack([exx, eyy, gxy], 1)


def _rhs(sig: torch.Tensor) -> torch.Tensor:
    """f = -sum_e P_e^T B_c^T sigma_e (B_c: element-centre B = its integral)."""
    sxx, syy, sxy = sig[:, 0], sig[:, 1], sig[:, 2]
    # B_c^T sigma per corner a: fx = dNdx sxx + dNdy sxy, fy = dNdy syy + dNdx sxy
    dndx = (-0.5, 0.5, -0.5, 0.5)
    dndy = (-0.5, -0.5, 0.5, 0.5)
    f = torch.zeros(sig.shape[0], 2, *sig.shape[2:], dtype=sig.dtype, device=sig.device)
    for a, (di, dj) in enumerate(_OFFSETS):
        fx = dndx[a] * sxx + dndy[a] * sxy
        fy = dndy[a] * syy + dndx[a] * sxy
        fa = torch.stack([fx, fy], 1)
        if di or dj:
            fa = torch.roll(fa, shifts=(di, dj), dims=(-2, -1))
        f -= fa
    return f


def _node_mask(stiff: torch.Tensor) -> torch.Tensor:
    """Nodes touched by at least one stiff pixel; (S, 1, H, W) bool -> bool."""
    s = stiff.to(torch.float32)
    m = s + torch.roll(s, 1, -1) + torch.roll(s, 1, -2) + torch.roll(s, (1, 1), (-2, -1))
    return m > 0


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(dim=(1, 2, 3))

