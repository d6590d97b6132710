"""libvmaf's float32 linear algebra for SpEED (``speed.c``), reproduced operation by operation.

SpEED's 25x25 covariance matrices of smooth content are badly conditioned, and libvmaf solves
them with its own float32 routines: a Householder QR (built from explicit reflection matrices)
with back substitution, and eigenvalues from a Householder tridiagonalisation followed by
implicit symmetric QR steps (adapted from GSL). A float64 solver differs by up to ~0.1 in the
SpEED score on smooth gradients, so these functions redo libvmaf's float32 arithmetic in the same
order (numpy float32 arrays; each elementwise operation rounds like C without FMA; values that
C computes in double are computed in float64 and rounded where C stores them).
"""

from __future__ import annotations

import numpy as np

f32 = np.float32
EIGENVALUE_EPS = 1e-6
EIGENVALUE_MAX_ITERS = 500


def _seq_sum(x: np.ndarray) -> np.float32:
    """Sequential float32 sum (C's ``for (...) s += x[i]``)."""
    if x.size == 0:
        return f32(0.0)
    return np.cumsum(x.astype(np.float32), dtype=np.float32)[-1]


def _sqrt(x: np.float32) -> np.float32:
    """C's ``(float) sqrt((double) x)`` (equal to a correctly rounded float sqrt)."""
    return f32(np.sqrt(np.float64(x)))


def _hypot(x: np.float32, y: np.float32) -> np.float32:
    return _sqrt(f32(f32(x * x) + f32(y * y)))


def _sign(x: np.float32) -> int:
    return 1 if x >= 0 else -1


def _matmul(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``matrix_mul``: each output summed over k in order, products rounded first."""
    out = np.zeros((x.shape[0], y.shape[1]), dtype=np.float32)
    for k in range(x.shape[1]):
        out = out + np.outer(x[:, k], y[k, :]).astype(np.float32)
    return out


# ---------------------------------------------------------------------------------------------
# Linear system: QR with Householder matrices, then back substitution
# ---------------------------------------------------------------------------------------------


def _qr(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``matrix_qr_decomposition``: returns (Q, R) exactly as libvmaf leaves them."""
    n = a.shape[0]
    z = a.copy()
    q = np.eye(n, dtype=np.float32)
    for k in range(n - 1):
        # matrix_minor(z, k): rows/columns before k become the identity.
        z[:k, :] = 0.0
        z[:, :k] = 0.0
        z[np.arange(k), np.arange(k)] = 1.0
        vec = z[:, k].copy()
        norm = _sqrt(_seq_sum(vec * vec))
        vec[k] = f32(vec[k] + f32(_sign(a[k, k]) * norm))
        vnorm = _sqrt(_seq_sum(vec * vec))
        vec = (vec / vnorm).astype(np.float32)
        h = (np.outer(f32(-2.0) * vec, vec)).astype(np.float32)
        h[np.arange(n), np.arange(n)] += f32(1.0)
        z = _matmul(h, z)
        q = _matmul(h, q)
    r = _matmul(q, a)
    return q.T.copy(), r


def solve_linear_system(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """``solve_linear_system``: X with A X = B in libvmaf's float32 arithmetic, or None when a
    diagonal element of R is below 1e-6 (libvmaf's failure)."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    q, r = _qr(a)
    rhs = _matmul(q.T.copy(), b)
    n = a.shape[0]
    x = np.zeros_like(rhs)
    for i in range(n - 1, -1, -1):
        den = r[i, i]
        if abs(float(den)) < EIGENVALUE_EPS:
            return None
        term = rhs[i].copy()
        for k in range(i + 1, n):
            term = term - (x[k] * r[i, k]).astype(np.float32)
        x[i] = term / den
    return x


# ---------------------------------------------------------------------------------------------
# Eigenvalues: Householder tridiagonalisation + implicit symmetric QR (GSL's symmtd + symm)
# ---------------------------------------------------------------------------------------------


def _householder(a: np.ndarray, col: int, start: int) -> np.float32:
    n = a.shape[0]
    if n - start == 1:
        return f32(0.0)
    xnorm = _sqrt(_seq_sum(a[start + 1 :, col] * a[start + 1 :, col]))
    if xnorm == 0.0:
        return f32(0.0)
    alpha = a[start, col]
    beta = f32(-_sign(alpha) * _hypot(alpha, xnorm))
    tau = f32(f32(beta - alpha) / beta)
    s = f32(alpha - beta)
    if s != 0.0:
        a[start:, col] = (a[start:, col] / s).astype(np.float32)
        a[start, col] = beta
    return tau


def _tridiagonal(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = a.shape[0]
    v = np.zeros(n, dtype=np.float32)
    x = np.zeros(n, dtype=np.float32)
    for i in range(n - 2):
        tau = _householder(a, i, i + 1)
        v[i + 1 :] = a[i + 1 :, i]
        if tau != 0.0:
            a[i + 1, i] = v[i + 1]
            v[i + 1] = 1.0
            lo = i + 1
            acc = np.zeros(n - lo, dtype=np.float32)
            for j in range(lo, n):
                acc = acc + ((tau * a[lo:, j]).astype(np.float32) * v[j]).astype(np.float32)
            x[lo:] = acc
            xv = _seq_sum((x[lo:] * v[lo:]).astype(np.float32))
            alpha = f32(-0.5 * np.float64(tau) * np.float64(xv))
            x[lo:] = x[lo:] + (alpha * v[lo:]).astype(np.float32)
            upd = (np.outer(x[lo:], v[lo:]).astype(np.float32)
                   + np.outer(v[lo:], x[lo:]).astype(np.float32))
            a[lo:, lo:] = a[lo:, lo:] - upd
    d = np.diag(a).astype(np.float32).copy()
    sd = np.array([a[i + 1, i] for i in range(n - 1)], dtype=np.float32)
    return d, sd


def _chop(d: np.ndarray, sd: np.ndarray, off: int, n: int) -> None:
    for i in range(off, off + n - 1):
        if abs(float(sd[i])) < EIGENVALUE_EPS * float(f32(abs(d[i]) + abs(d[i + 1]))):
            sd[i] = 0.0


def _trailing_eigenvalue(d: np.ndarray, sd: np.ndarray, off: int, n: int) -> np.float32:
    ta, tb, tab = d[off + n - 2], d[off + n - 1], sd[off + n - 2]
    dt = f32(np.float64(f32(ta - tb)) / 2.0)
    if dt > 0:
        return f32(tb - f32(tab * f32(tab / f32(dt + _hypot(dt, tab)))))
    if dt == 0:
        return f32(tb - abs(tab))
    return f32(tb + f32(tab * f32(tab / f32(-dt + _hypot(dt, tab)))))


def _givens(a: np.float32, b: np.float32) -> tuple[np.float32, np.float32]:
    if b == 0:
        return f32(1.0), f32(0.0)
    if abs(b) > abs(a):
        t = f32(-a / b)
        s1 = f32(1.0 / np.sqrt(np.float64(f32(f32(1.0) + f32(t * t)))))
        return f32(s1 * t), s1
    t = f32(-b / a)
    c1 = f32(1.0 / np.sqrt(np.float64(f32(f32(1.0) + f32(t * t)))))
    return c1, f32(c1 * t)


def _rot(c: np.float32, s: np.float32, ap: np.float32, bp: np.float32,
         aq: np.float32) -> tuple[np.float32, np.float32, np.float32]:
    ap1 = f32(f32(c * f32(f32(c * ap) - f32(s * bp))) + f32(s * f32(f32(s * aq) - f32(c * bp))))
    bp1 = f32(f32(c * f32(f32(s * ap) + f32(c * bp))) - f32(s * f32(f32(s * bp) + f32(c * aq))))
    aq1 = f32(f32(s * f32(f32(s * ap) + f32(c * bp))) + f32(c * f32(f32(s * bp) + f32(c * aq))))
    return ap1, bp1, aq1


def _qr_step(d: np.ndarray, sd: np.ndarray, off: int, n: int) -> None:
    mu = _trailing_eigenvalue(d, sd, off, n)
    if EIGENVALUE_EPS * abs(float(mu)) > float(f32(abs(d[off]) + abs(sd[off]))):
        mu = f32(0.0)
    x = f32(d[off] - mu)
    z = sd[off]
    ak = bk = zk = f32(0.0)
    ap, bp, aq = d[off], sd[off], d[off + 1]
    if n == 2:
        c, s = _givens(x, z)
        ap1, bp1, aq1 = _rot(c, s, ap, bp, aq)
        d[off], sd[off], d[off + 1] = ap1, bp1, aq1
        return
    bq = sd[off + 1]
    for k in range(n - 1):
        c, s = _givens(x, z)
        bk1 = f32(f32(c * bk) - f32(s * zk))
        ap1, bp1, aq1 = _rot(c, s, ap, bp, aq)
        zp1 = f32(-s * bq)
        bq1 = f32(c * bq)
        ak, bk, zk = ap1, bp1, zp1
        ap, bp = aq1, bq1
        if k < n - 2:
            aq = d[off + k + 2]
        if k < n - 3:
            bq = sd[off + k + 2]
        d[off + k] = ak
        if k > 0:
            sd[off + k - 1] = bk1
        if k < n - 2:
            sd[off + k + 1] = bp
        x, z = bk, zk
    d[off + n - 1] = ap
    sd[off + n - 2] = bk


def eigenvalues(a: np.ndarray) -> np.ndarray:
    """``compute_eigenvalues``: libvmaf's float32 eigenvalues, in its (unsorted) order."""
    m = np.array(a, dtype=np.float32, copy=True)
    n = m.shape[0]
    if n == 1:
        return m[0].copy()
    d, sd = _tridiagonal(m)
    _chop(d, sd, 0, n)
    b = n - 1
    it = 0
    while b > 0 and it < EIGENVALUE_MAX_ITERS:
        if sd[b - 1] == 0.0:
            b -= 1
            continue
        a0 = b - 1
        while a0 > 0:
            if sd[a0 - 1] == 0.0:
                break
            a0 -= 1
        nb = b - a0 + 1
        _qr_step(d, sd, a0, nb)
        _chop(d, sd, a0, nb)
        it += 1
    return d
