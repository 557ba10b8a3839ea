"""Compiled single-pass kernels (numba) behind the metrics: exact counting by buckets instead of
sorting, and fused reductions.

Why buckets: every rank-based metric (the AUCs, the top-k IoU) only needs, for a few hundred query
values, how many pixels lie below and how many equal each one, or where the k-th largest value
sits. Sorting 480k pixels for that costs milliseconds. Here a pixel ``v`` goes to the bucket
``floor((v - lo) * scale)`` (``lo`` the minimum): floating-point subtraction and multiplication by a
positive number are monotone, so a pixel in a lower bucket than ``q`` is certainly below ``q`` and one
in a higher bucket certainly above. Only pixels that share a bucket with a query value are compared
with it, in float64. The counts are integers, so the results are exactly those of a sort: ties
included. A badly spread map (one outlier, everything else in bucket 0) only makes the kernels slower,
never wrong.

Kernels that divide use numpy's error model (IEEE results, no ZeroDivisionError check), without
which LLVM does not vectorise the division. The sums (``sums``, ``dot``, ``shifted_sum``,
``sim_sum``, ``density_pass``) are blocked and reassociated (``fastmath``) so that they vectorise:
their rounding differs from numpy's pairwise sums by ~1e-16 relative. NaN and infinity are never
assumed away: callers validate with numpy's min/max first.

The tests (``tests/test_metrics_kernels.py``) hold a plain-numpy reference of each kernel.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# reassociation (vectorised sums) and contraction (FMA) only; NaN/inf semantics kept
_FAST = {"reassoc", "contract", "nsz"}
N_BUCKETS = 65536  # ~7 pixels per bucket on an 800x600 map: few share a bucket with a query


@njit(cache=True, nogil=True)
def _bucket(v, lo, scale, nb):
    """``floor((v - lo) * scale)`` for ``v >= lo``, clipped to the last bucket (compared as a float
    first: a value far above the range must not overflow the integer conversion)."""
    x = (v - lo) * scale
    return nb - 1 if x >= nb else int(x)


@njit(cache=True, nogil=True)
def bucket_counts(a, idx, use_idx, lo, scale, nb, q):
    """Histogram of ``a`` (or of ``a[idx]`` with ``use_idx``) over ``nb`` buckets from ``lo`` with
    width ``1 / scale``, and for each query of the sorted, distinct ``q``: how many values are
    below it and how many equal it. Every value must be >= ``lo``; queries may be anywhere."""
    nq = q.size
    qb = np.empty(nq, np.int64)
    skip = 0  # queries below lo: nothing is below or equal them
    for j in range(nq):
        if q[j] < lo:
            qb[j] = -1
            skip += 1
        else:
            qb[j] = _bucket(q[j], lo, scale, nb)
    start = np.zeros(nb + 1, np.int64)  # queries of bucket b: start[b] .. start[b + 1]
    mark = np.zeros(nb, np.uint8)  # buckets that hold a query
    for j in range(skip, nq):
        start[qb[j] + 1] += 1
        mark[qb[j]] = 1
    for b in range(nb):
        start[b + 1] += start[b]
    start += skip
    m = idx.size if use_idx else a.size
    hist = np.zeros(nb, np.int32)
    # pass 1: the histogram, and (without a branch: they are few and scattered) the positions
    # of the values that share a bucket with a query; only the pages written are touched
    cand = np.empty(m + 1, np.int64)
    c = 0
    if use_idx:
        for i in range(m):
            b = _bucket(a[idx[i]], lo, scale, nb)
            hist[b] += 1
            cand[c] = i
            c += mark[b]
    else:
        for i in range(m):
            b = _bucket(a[i], lo, scale, nb)
            hist[b] += 1
            cand[c] = i
            c += mark[b]
    # pass 2: those values against the queries of their bucket, exactly
    below = np.zeros(nq, np.int64)
    equal = np.zeros(nq, np.int64)
    for k in range(c):
        v = a[idx[cand[k]]] if use_idx else a[cand[k]]
        b = _bucket(v, lo, scale, nb)
        for j in range(start[b], start[b + 1]):
            if v < q[j]:
                below[j] += 1
            elif v == q[j]:
                equal[j] += 1
    under = 0  # values in buckets below b
    for b in range(nb):
        for j in range(start[b], start[b + 1]):
            below[j] += under
        under += hist[b]
    return hist, below, equal


@njit(cache=True, nogil=True)
def kth_largest_bracketed(a, lo, hi, k, work):
    """The k-th largest value ``v`` of ``a``, how many values exceed it and how many equal it,
    given a bracket ``lo <= v <= hi`` (from a sample). One pass counts the values above ``hi`` and
    copies those inside the bracket to ``work`` (float64, a's size); those are split again into
    buckets, and only the bucket that holds ``v`` is sorted. Returns ``found=False`` when the
    bracket misses (the caller then sorts everything)."""
    above = 0
    c = 0
    for i in range(a.size):
        v = a[i]
        if v > hi:
            above += 1
        elif v >= lo:
            work[c] = v
            c += 1
    if not (above < k <= above + c):
        return False, 0.0, 0, 0
    inside = work[:c]
    if hi > lo:  # buckets over [lo, hi], as in bucket_counts (monotone, so exact)
        nb = 1024
        scale = nb / (hi - lo)
        if not np.isfinite(scale):
            scale = 0.0
        hist = np.zeros(nb, np.int64)
        for i in range(c):
            hist[_bucket(inside[i], lo, scale, nb)] += 1
        bk = nb - 1
        while above + hist[bk] < k:
            above += hist[bk]
            bk -= 1
        vals = np.empty(hist[bk], np.float64)
        m = 0
        for i in range(c):
            if _bucket(inside[i], lo, scale, nb) == bk:
                vals[m] = inside[i]
                m += 1
    else:
        vals = inside.copy()
    vals.sort()
    v = vals[vals.size - (k - above)]
    gt = 0
    eq = 0
    for x in vals:
        if x > v:
            gt += 1
        elif x == v:
            eq += 1
    return True, v, above + gt, eq


@njit(cache=True, nogil=True)
def _key(x, fbuf, ibuf):
    """An integer that orders float64 values as they compare (-0.0 and 0.0 alike)."""
    fbuf[0] = x
    k = ibuf[0]
    return k if k >= 0 else -(k & 0x7FFFFFFFFFFFFFFF)


@njit(cache=True, nogil=True)
def _unkey(k, fbuf, ibuf):
    ibuf[0] = k if k >= 0 else (-k) | (-0x7FFFFFFFFFFFFFFF - 1)
    return fbuf[0]


@njit(cache=True, nogil=True, error_model="numpy")
def minmax_preimages(lo, hi, thresholds):
    """For each threshold t, the smallest float64 x in [lo, hi] whose min-max rescaling
    ``(x - lo) / (hi - lo)`` (as numpy computes it) is >= t, or +inf if none: the pixels with a
    rescaled value >= t are exactly those >= x, so a count at x answers AUC-Borji's thresholds with
    no rounding margin. Bisection over the float64 values between lo and hi (at most 64 steps)."""
    span = hi - lo
    fbuf = np.empty(1, np.float64)
    ibuf = fbuf.view(np.int64)
    out = np.empty(thresholds.size, np.float64)
    for j in range(thresholds.size):
        t = thresholds[j]
        if (lo - lo) / span >= t:
            out[j] = lo
            continue
        if (hi - lo) / span < t:
            out[j] = np.inf
            continue
        a = _key(lo, fbuf, ibuf)  # rescaled < t
        b = _key(hi, fbuf, ibuf)  # rescaled >= t
        while a + 1 < b:
            m = (a & b) + ((a ^ b) >> 1)  # floor((a + b) / 2) without overflow (keys span 2**64)
            if (_unkey(m, fbuf, ibuf) - lo) / span >= t:
                b = m
            else:
                a = m
        out[j] = _unkey(b, fbuf, ibuf)
    return out


@njit(cache=True, nogil=True)
def pixel_indices(x, y, h, w, out):
    """Flat indices ``row * w + col`` of points ``(x, y)``, rounded to the nearest pixel centre
    (``floor(v + 0.5)``; the outer edge ``w - 0.5`` goes to the last pixel), into ``out``. Returns
    -1, or the position of the first point outside the map (NaN included) and stops there."""
    for i in range(x.size):
        xi = x[i]
        yi = y[i]
        if not (xi >= -0.5 and xi <= w - 0.5 and yi >= -0.5 and yi <= h - 0.5):
            return i
        col = min(int(xi + 0.5), w - 1)  # x + 0.5 >= 0: truncation is the floor
        row = min(int(yi + 0.5), h - 1)
        out[i] = row * w + col
    return -1


@njit(cache=True, nogil=True)
def count_both_ge(s, ts, d, td):
    """How many pixels have ``s >= ts`` and ``d >= td``."""
    c = 0
    for i in range(s.size):
        c += (s[i] >= ts) & (d[i] >= td)
    return c


@njit(cache=True, nogil=True, error_model="numpy")
def unique_minmax_counts(a, idx, seen, epoch, lo, span, thresholds, work):
    """AUC_shuffled.m's other-image map: over the distinct indices of ``idx`` (a location counts
    once), how many have a rescaled value ``(a - lo) / span`` >= each ascending threshold; and how
    many distinct indices there are. ``seen`` (uint8, a's size) marks a visited location with
    ``epoch``, a number no earlier call used, so it never needs clearing; ``work`` (float64, at
    least idx's size) takes the values. Both loops are branch-free: duplicates come in no order."""
    c = 0
    for i in range(idx.size):
        k = idx[i]
        new = seen[k] != epoch
        seen[k] = epoch
        work[c] = a[k]
        c += new
    nt = thresholds.size
    bins = np.zeros(nt + 1, np.int64)  # bins[j]: how many thresholds a value reaches
    for i in range(c):
        m = (work[i] - lo) / span
        j = 0
        for t in range(nt):
            j += m >= thresholds[t]
        bins[j] += 1
    out = np.zeros(nt, np.int64)
    acc = bins[nt]
    for j in range(nt - 1, -1, -1):
        out[j] = acc
        acc += bins[j]
    return out, c


# Sums run in blocks of _BLOCK elements (vectorised inside a block, then added up): the rounding
# error grows with the block length plus the number of blocks, not with the array's length, as
# with numpy's pairwise sums. (The block loop is a function of its own: LLVM vectorises that.)
_BLOCK = 2048


@njit(cache=True, nogil=True, fastmath=_FAST)
def _sums_block(x):
    s = 0.0
    ss = 0.0
    for i in range(x.size):
        v = x[i]
        s += v
        ss += v * v
    return s, ss


@njit(cache=True, nogil=True, fastmath=_FAST)
def sums(a):
    """``sum(a)`` and ``sum(a * a)``."""
    s = 0.0
    ss = 0.0
    for start in range(0, a.size, _BLOCK):
        bs, bss = _sums_block(a[start : start + _BLOCK])
        s += bs
        ss += bss
    return s, ss


@njit(cache=True, nogil=True, fastmath=_FAST)
def _dot_block(x, y):
    s = 0.0
    for i in range(x.size):
        s += x[i] * y[i]
    return s


@njit(cache=True, nogil=True, fastmath=_FAST)
def dot(a, b):
    s = 0.0
    for start in range(0, a.size, _BLOCK):
        s += _dot_block(a[start : start + _BLOCK], b[start : start + _BLOCK])
    return s


@njit(cache=True, nogil=True, fastmath=_FAST)
def _shifted_block(x, off):
    s = 0.0
    for i in range(x.size):
        s += x[i] - off
    return s


@njit(cache=True, nogil=True, fastmath=_FAST)
def shifted_sum(a, off):
    """``sum(a - off)``, the subtraction done per element as numpy does it."""
    s = 0.0
    for start in range(0, a.size, _BLOCK):
        s += _shifted_block(a[start : start + _BLOCK], off)
    return s


@njit(cache=True, nogil=True, fastmath=_FAST)
def _sim_block(x, poff, y, doff, c):
    s = 0.0
    for i in range(x.size):
        s += min(x[i] - poff, (y[i] - doff) * c)
    return s


@njit(cache=True, nogil=True, fastmath=_FAST)
def sim_sum(p, poff, d, doff, c):
    """``sum(min(p - poff, (d - doff) * c))``: SIM's histogram intersection, unnormalised."""
    s = 0.0
    for start in range(0, p.size, _BLOCK):
        s += _sim_block(p[start : start + _BLOCK], poff, d[start : start + _BLOCK], doff, c)
    return s


@njit(cache=True, nogil=True, fastmath=_FAST, error_model="numpy")
def kld_ratio(p, poff, c, add, d, eps, out):
    """``out = d / ((p - poff) * c + add) + eps``: the argument of KLD's logarithm."""
    for i in range(p.size):
        out[i] = d[i] / ((p[i] - poff) * c + add) + eps


@njit(cache=True, nogil=True, fastmath=_FAST, error_model="numpy")
def _kld_block(p, poff, c, add, d, eps, out):
    for i in range(p.size):
        out[i] = d[i] / ((p[i] - poff) * c + add) + eps


@njit(cache=True, nogil=True)
def density_pass(s, d, do_dot, do_sim, sim_poff, sim_doff, sim_c, do_kld, kld_poff, kld_c, kld_add, kld_eps, out):
    """CC's ``dot(s, d)``, SIM's :func:`sim_sum` and KLD's :func:`kld_ratio` (into ``out``) in one
    pass over the map and the density, block by block (each block is read from memory once and
    then from cache), each part only if asked. Returns the dot product and the SIM sum."""
    n = s.size
    dt = 0.0
    sm = 0.0
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        x = s[start:stop]
        y = d[start:stop]
        if do_dot:
            dt += _dot_block(x, y)
        if do_sim:
            sm += _sim_block(x, sim_poff, y, sim_doff, sim_c)
        if do_kld:
            _kld_block(x, kld_poff, kld_c, kld_add, y, kld_eps, out[start:stop])
    return dt, sm

