"""Batched, matrix-free PCG solve of the periodic Q4 problem, chunk by chunk.

All unit macroscopic strains of a chunk of images are solved at once: every system
(image x load case) is one PCG run, preconditioned by the FFT Green operator of
:class:`~dmtnn.fem._q4._Q4Operator`, that stops on its own relative residual.
Converged systems are checked against their true residual, frozen and removed from
the working set; stagnation or divergence ends a system as not converged.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from dmtnn.fem._inputs import _as_image_array, _solver_args
from dmtnn.fem._materials import _check_plane, _phase_lut
from dmtnn.fem._q4 import _center_strain, _dot, _element_stress, _node_mask, _Q4Operator, _rhs

logger = logging.getLogger(__package__)  # one logger, "dmtnn.fem", for the package

_STALL_ITERS = 500  # iterations without halving the best residual: stagnation
_CHECK_EVERY = 50  # iterations between checks of the recursive against the true residual
_MAX_REPLACEMENTS = 3  # residual replacements before a system is retired unconverged
# Working-set budget per chunk (number of pixels x systems) on each device type.  On the
# CPU a chunk whose fields stay in cache is faster than a large one (measured on 2 cores,
# float32: 32 threshold-labelled 128 px Berea slices took 195 ms per image in chunks of 4,
# about 2**18 pixel-systems, against 275 ms in one chunk; of smoothed-noise 256 px images,
# one per chunk was the fastest).
_CHUNK_PIXELS = {"cpu": 2**18, "cuda": 2**27}


def _solve_chunk(
    kap_img, mu_img, kappa0, mu0, tol, max_iter, device, dtype, compact_frac=0.25,
    loads=(0, 1, 2), return_fields=False,
):
    """Solve unit loads for a chunk of images (fields normalised, (B, H, W)).

    ``loads`` selects the unit macroscopic strains (0 = xx, 1 = yy, 2 = engineering
    xy; L of them).  Returns C (B, 3, L) in normalised units (column j: the mean
    stress of load ``loads[j]``), n_iter (B,), rel_res (B,), converged (B,); with
    ``return_fields`` also the per-system (S = B L) fluctuation u (S, 2, H, W),
    centre strain (S, 3, H, W), centre stress (S, 3, H, W), n_iter (S,),
    rel_res (S,) and converged (S,).
    """
    B, H, W = kap_img.shape
    op = _Q4Operator(H, W, kappa0, mu0, device, dtype)
    L = len(loads)
    S = L * B
    img_of = torch.arange(B, device=device).repeat_interleave(L)
    load_of = torch.as_tensor(list(loads), dtype=torch.long, device=device).repeat(B)
    eye = torch.eye(3, dtype=dtype, device=device)

    kap_all = kap_img.to(device=device, dtype=dtype)[:, None]  # (B,1,H,W)
    mu_all = mu_img.to(device=device, dtype=dtype)[:, None]
    stiff_all = (kap_all > 0) | (mu_all > 0)
    mask_all = _node_mask(stiff_all)  # (B,1,H,W)

    x_out = torch.zeros(S, 2, H, W, dtype=dtype, device=device)
    n_iter_out = torch.zeros(S, dtype=torch.long, device=device)
    res_out = torch.zeros(S, dtype=torch.float64, device=device)
    conv_out = torch.zeros(S, dtype=torch.bool, device=device)

    # working set
    idx = torch.arange(S, device=device)
    kap = kap_all[img_of]
    mu = mu_all[img_of]
    mask = mask_all[img_of].to(dtype)
    f = _rhs(_element_stress(kap, mu, eye[load_of]))  # zero on inactive nodes
    s12 = (kap + 2.0 * mu) / 12.0
    kap, mu = kap / 4.0, mu / 4.0  # the operator takes kappa / 4 and mu / 4
    fnorm = torch.sqrt(_dot(f, f))
    x = torch.zeros_like(f)
    r = f.clone()
    z = op.precondition(r) * mask
    p = z.clone()
    rz = _dot(r, z)
    it = torch.zeros(S, dtype=torch.long, device=device)
    nrep = torch.zeros(S, dtype=torch.long, device=device)
    best = fnorm.clone()
    since = torch.zeros(S, dtype=torch.long, device=device)
    done = fnorm == 0  # nothing to solve (all pore, homogeneous, ...)
    thresh = tol * fnorm

    def true_residual(ks):
        rt = f[ks] - op.apply(x[ks], kap[ks], mu[ks], s12[ks])
        return rt, torch.sqrt(_dot(rt, rt))

    def retire(ks, tn, ok):
        gi = idx[ks]
        x_out[gi] = x[ks]
        n_iter_out[gi] = it[ks]
        fn = fnorm[ks]
        res_out[gi] = torch.where(fn > 0, tn / torch.where(fn > 0, fn, 1.0), 0.0).double()
        conv_out[gi] = ok

    k = 0
    while idx.numel():
        n_done = int(done.sum())
        n_work = idx.numel()
        if k >= max_iter:
            ks = torch.arange(n_work, device=device)
            _, tn = true_residual(ks)
            retire(ks, tn, (tn <= 2.0 * thresh) | (fnorm == 0))
            break
        if n_done and (n_done >= compact_frac * n_work or n_done == n_work):
            # retire converged systems after checking their true residual
            ks = done.nonzero().squeeze(1)
            rt, tn = true_residual(ks)
            ok = (tn <= 2.0 * thresh[ks]) | (fnorm[ks] == 0)
            # stagnation (e.g. float32 with a tolerance near its rounding floor):
            # after _MAX_REPLACEMENTS failed checks the system is retired unconverged
            stalled = ~ok & (nrep[ks] >= _MAX_REPLACEMENTS)
            out = ok | stalled
            retire(ks[out], tn[out], ok[out])
            bad_m = ~out
            if bool(bad_m.any()):  # residual replacement, then carry on
                bad = ks[bad_m]
                r[bad] = rt[bad_m]
                zb = op.precondition(r[bad]) * mask[bad]
                z[bad] = zb
                p[bad] = zb
                rz[bad] = _dot(r[bad], zb)
                done[bad] = False
                nrep[bad] += 1
                logger.debug("residual replacement: %d systems at iteration %d", bad.numel(), k)
            ok = out
            keep = torch.ones(n_work, dtype=torch.bool, device=device)
            keep[ks[ok]] = False
            kk = keep.nonzero().squeeze(1)
            idx, kap, mu, s12, mask, f, fnorm, x, r, z, p, rz, it, nrep, best, since, done, thresh = (
                t[kk]
                for t in (
                    idx, kap, mu, s12, mask, f, fnorm, x, r, z, p, rz, it, nrep, best, since,
                    done, thresh,
                )
            )
            if not idx.numel():
                break
        # one PCG step on the working set; converged systems are frozen (alpha = 0)
        k += 1
        active = ~done
        q = op.apply(p, kap, mu, s12)
        pq = _dot(p, q)
        done = done | (active & (pq <= 0))  # breakdown: goes to the true-residual check
        alpha = torch.where(active & (pq > 0), rz / torch.where(pq > 0, pq, 1.0), 0.0)
        x.add_(alpha[:, None, None, None] * p)
        r.sub_(alpha[:, None, None, None] * q)
        rn = torch.sqrt(_dot(r, r))
        it += active.long()
        done = done | (rn <= thresh)
        # stagnation / divergence (rounding floor above tol): retire as not converged
        improved = rn < 0.5 * best
        best = torch.where(improved, rn, best)
        since = torch.where(improved, 0, since + 1)
        stalled = ~done & ((rn > 1e3 * best) | (since > _STALL_ITERS))
        if bool(stalled.any()):
            done = done | stalled
            nrep = torch.where(stalled, _MAX_REPLACEMENTS, nrep)
            logger.debug("stagnation: %d systems at iteration %d", int(stalled.sum()), k)
        z = op.precondition(r) * mask
        rz_new = _dot(r, z)
        beta = torch.where(~done & (rz > 0), rz_new / torch.where(rz > 0, rz, 1.0), 0.0)
        p = z + beta[:, None, None, None] * p
        rz = torch.where(done, rz, rz_new)
        if k % _CHECK_EVERY == 0:
            # guard against drift of the recursive residual (float32, singular systems):
            # replace it by the true residual; repeated drift counts as stagnation
            ks = (~done).nonzero().squeeze(1)
            if ks.numel():
                rt, tn = true_residual(ks)
                drift = (tn > 10.0 * rn[ks]) & (tn > 2.0 * thresh[ks])
                if bool(drift.any()):
                    bad = ks[drift]
                    stop = nrep[bad] >= _MAX_REPLACEMENTS
                    done[bad[stop]] = True  # retired as not converged at the next check
                    bad = bad[~stop]
                    r[bad] = rt[drift][~stop]
                    zb = op.precondition(r[bad]) * mask[bad]
                    z[bad] = zb
                    p[bad] = zb
                    rz[bad] = _dot(r[bad], zb)
                    nrep[bad] += 1
                    logger.debug("residual drift: %d systems at iteration %d", bad.numel(), k)

    # --- effective stiffness by volume-averaged stress ---------------------------------
    kap_s = kap_all[img_of]
    mu_s = mu_all[img_of]
    strain = _center_strain(x_out) + eye[load_of][:, :, None, None]
    k_ = kap_s[:, 0]
    m_ = mu_s[:, 0]
    exx, eyy, gxy = strain[:, 0], strain[:, 1], strain[:, 2]
    sig = torch.stack(
        [(k_ + m_) * exx + (k_ - m_) * eyy, (k_ - m_) * exx + (k_ + m_) * eyy, m_ * gxy], 1
    )
    sbar = sig.to(torch.float64).mean(dim=(2, 3))  # (S, 3): column `load` of C
    C = sbar.reshape(B, L, 3).transpose(1, 2)
    n_iter = n_iter_out.reshape(B, L).max(1).values
    rel_res = res_out.reshape(B, L).max(1).values
    converged = conv_out.reshape(B, L).all(1)
    if return_fields:
        return C, n_iter, rel_res, converged, (x_out, strain, sig, n_iter_out, res_out, conv_out)
    return C, n_iter, rel_res, converged


def _reference_medium(lut_k: np.ndarray, lut_m: np.ndarray) -> tuple[float, float]:
    """Homogeneous reference medium of the Green preconditioner: the stiffest phase."""
    kappa0 = max(float(lut_k.max()), 1e-2 * float(lut_m.max()))
    mu0 = max(float(lut_m.max()), 1e-2 * float(lut_k.max()))
    return kappa0, mu0


def _solve(
    images: Any,
    phase_moduli: Any,
    plane: str,
    tol: float | None,
    max_iter: int,
    device: Any,
    dtype: Any,
    batch_size: int | None,
) -> tuple[torch.Tensor, np.ndarray, np.ndarray, np.ndarray]:
    _check_plane(plane)
    dev, dtype, tol = _solver_args(tol, max_iter, device, dtype)
    if batch_size is not None and (not isinstance(batch_size, (int, np.integer)) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    arr = _as_image_array(images)
    present, lut_k, lut_m = _phase_lut(arr, phase_moduli, plane)
    B, H, W = arr.shape
    scale = float(max(lut_k.max(), lut_m.max()))
    C = torch.zeros(B, 3, 3, dtype=torch.float64)
    n_iter = np.zeros(B, dtype=np.int64)
    rel_res = np.zeros(B)
    conv = np.ones(B, dtype=bool)
    if scale == 0:  # nothing but empty pores: zero stiffness, nothing to solve
        return C, n_iter, rel_res, conv
    lut_k, lut_m = lut_k / scale, lut_m / scale
    kappa0, mu0 = _reference_medium(lut_k, lut_m)
    if batch_size is None:
        batch_size = max(1, _CHUNK_PIXELS.get(dev.type, 2**18) // (3 * H * W))
    for s in range(0, B, batch_size):
        e = min(B, s + batch_size)
        ids = torch.from_numpy(np.searchsorted(present, arr[s:e].astype(np.int64))).to(dev)
        kap_c = torch.as_tensor(lut_k, dtype=dtype, device=dev)[ids]
        mu_c = torch.as_tensor(lut_m, dtype=dtype, device=dev)[ids]
        Cc, it, rr, cv = _solve_chunk(kap_c, mu_c, kappa0, mu0, tol, max_iter, dev, dtype)
        C[s:e] = Cc.cpu() * scale
        n_iter[s:e] = it.cpu().numpy()
        rel_res[s:e] = rr.cpu().numpy()
        conv[s:e] = cv.cpu().numpy()
    if not conv.all():
        bad = np.flatnonzero(~conv)
        logger.warning(
            "FEM solve did not converge for %d of %d images (indices %s; max rel. residual "
            "%.2e after %d iterations, tol %.1e); their moduli are set to NaN",
            bad.size, B, bad[:10].tolist(), rel_res[bad].max(), n_iter[bad].max(), tol,
        )
        C[torch.from_numpy(~conv)] = float("nan")
    return C, n_iter, rel_res, conv

