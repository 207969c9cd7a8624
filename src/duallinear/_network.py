r"""Objective and gradient of a network of ``B`` parallel branches, on reduced data.

The network is ``f(X) = sum_b W_{H,b} .. W_{1,b} X``; all branches have the same widths, so
the weights of layer ``i`` are held as one stack of shape ``(B, d_i, d_{i-1})`` and every
product is a batched matrix product. The penalty is ``gamma sum_{b,i} ||W_{i,b}||_{S_H}^H``
(``"schatten"``) or ``gamma sum_{b,i} ||W_{i,b}||_F^2`` (``"frobenius"``).

On reduced data (``docs/math.md``) the loss is ``1/2 ||f(U diag(s)) - A||^2 + const``, with
``B0 = U diag(s)`` of shape ``(d0, r)`` and ``A`` of shape ``(dH, r)``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["stack", "unstack", "value_and_grad"]


def stack(branches: list[list[np.ndarray]]) -> list[np.ndarray]:
    """``B`` lists ``[W_1, .., W_H]`` -> ``H`` stacks of shape ``(B, d_i, d_{i-1})``."""
    return [np.stack([branch[i] for branch in branches]) for i in range(len(branches[0]))]


def unstack(layers: list[np.ndarray]) -> list[list[np.ndarray]]:
    """Inverse of :func:`stack` (each ``W`` a contiguous copy)."""
    return [[np.array(layer[b]) for layer in layers] for b in range(layers[0].shape[0])]


def _penalty(W: np.ndarray, H: int, penalty: str) -> tuple[float, np.ndarray]:
    """Sum over the stack ``W`` (B, m, n) of ``||W_b||_F^2`` or ``||W_b||_{S_H}^H``, and its
    gradient."""
    if W.size == 0:
        return 0.0, np.zeros_like(W)
    if penalty == "frobenius" or H == 2:
        return float(np.sum(W * W)), 2.0 * W
    if H == 4:
        WtW = np.swapaxes(W, 1, 2) @ W
        return float(np.sum(WtW * WtW)), 4.0 * (W @ WtW)
    U, s, Vt = np.linalg.svd(W, full_matrices=False)
    return float(np.sum(s**H)), (U * (H * s[:, None, :] ** (H - 1))) @ Vt


def value_and_grad(layers: list[np.ndarray], B0: np.ndarray, A: np.ndarray, gamma: float,
                   const: float, penalty: str) -> tuple[float, list[np.ndarray]]:
    """Objective and its gradient (one stack per layer, shapes as ``layers``).

    Parameters
    ----------
    layers : list of ndarray, shapes (B, d_i, d_{i-1})
        The weights of every branch, layer by layer.
    B0 : ndarray, shape (d0, r)
        ``U diag(s)``.
    A : ndarray, shape (dH, r)
    gamma : float
    const : float
        Added to the value (``1/2 residual_sq``, or 0 for the gradient alone).
    penalty : {"schatten", "frobenius"}
    """
    H = len(layers)
    Z = [layers[0] @ B0]  # (B, d_1, r)
    for W in layers[1:]:
        Z.append(W @ Z[-1])
    R = np.sum(Z[-1], axis=0) - A
    value = 0.5 * float(np.sum(R * R)) + const
    grads: list[np.ndarray] = [np.empty(0)] * H
    G = np.broadcast_to(R, Z[-1].shape)
    for i in range(H - 1, 0, -1):
        grads[i] = G @ np.swapaxes(Z[i - 1], 1, 2)
        G = np.swapaxes(layers[i], 1, 2) @ G
    grads[0] = G @ B0.T
    if gamma > 0.0:
        for i, W in enumerate(layers):
            reg, dreg = _penalty(W, H, penalty)
            value += gamma * reg
            grads[i] = grads[i] + gamma * dreg
    return value, grads
