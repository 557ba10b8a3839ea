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
never wrong; the lowest bucket is split again by the values' binary exponent (:data:`SUB_BUCKETS`),
so maps spanning hundreds of orders of magnitude (leave-one-out densities) stay fast.

Kernels that divide use numpy's error model (IEEE results, no ZeroDivisionError check), without
which LLVM does not vectorise the division. The sums (``sums``, ``dot``, ``shifted_sum``,
``sim_sum``, ``kld_sum``, ``density_pass``) are blocked and reassociated (``fastmath``) so that they vectorise:
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


#: the lowest of the N_BUCKETS linear buckets is split again into SUB_BUCKETS by the values' binary
#: exponent (16 per octave, 1024 octaves below the bucket's upper end: every float64 of a map whose
#: range is below ~1e4), so a map whose values span hundreds of orders of magnitude (a
#: leave-one-subject-out density: 1e-5 near the fixations, 1e-80 far from them) does not pile a
#: third of its pixels into one bucket (which cost AUC-Judd's counting pass 2-3x)
SUB_BUCKETS = 16384
_SUB_SHIFT = 48  # key >> 48: the sign, the 11 exponent bits and the top 4 mantissa bits
_MAGNITUDE = 0x7FFFFFFFFFFFFFFF


@njit(cache=True, nogil=True)
def _order_key(bits):
    """An integer that orders float64 values (given as their int64 bit patterns) as they compare;
    -0.0 and 0.0 alike."""
    return bits if bits >= 0 else -(bits & _MAGNITUDE)


@njit(cache=True, nogil=True)
def _bucket2(v, bits, lo, scale, nb, top):
    """The bucket of ``v`` (``bits``: its bit pattern) among ``SUB_BUCKETS + nb - 1``, monotone in v:
    linear buckets ``floor((v - lo) * scale)`` from 1 up (``SUB_BUCKETS - 1 +`` that), and below
    them, for the values of the lowest linear bucket, buckets by ``_order_key(bits) >> 48`` counted
    down from ``top`` (the key of that bucket's upper end; ``top < 0``: not split)."""
    x = (v - lo) * scale
    if x >= 1.0:
        return SUB_BUCKETS - 1 + (nb - 1 if x >= nb else int(x))
    if top < 0:
        return SUB_BUCKETS - 1
    d = top - (_order_key(bits) >> _SUB_SHIFT)
    if d <= 0:
        return SUB_BUCKETS - 1
    return SUB_BUCKETS - 1 - d if d < SUB_BUCKETS - 1 else 0


@njit(cache=True, nogil=True)
def _buckets(x, bits, lo, scale, nb, top, out):
    """:func:`_bucket2` of every value of ``x`` into ``out``, written without branches (so that
    it vectorises); the same buckets."""
    last = np.float64(nb - 1)
    for i in range(x.size):
        v = (x[i] - lo) * scale
        # through int32: AVX2 converts float64 to int32 in one instruction but to int64 only with
        # AVX-512 (else value by value: 2.5x slower on an AMD EPYC); below 1.0 the result is unused
        lin = np.int64(np.int32(min(v, last)))
        b = bits[i]
        key = b if b >= 0 else -(b & _MAGNITUDE)
        d = min(max(top - (key >> _SUB_SHIFT), 0), SUB_BUCKETS - 1)
        sub = SUB_BUCKETS - 1 - d if top >= 0 else SUB_BUCKETS - 1
        out[i] = SUB_BUCKETS - 1 + lin if v >= 1.0 else sub


#: in :func:`bucket_counts_into`, the histogram counter of a bucket that holds a query (or the
#: kth-largest bracket) carries this bit during the counting pass: one load says both the count and
#: whether the value must be compared exactly (at most 2**30 - 1 values are counted)
_HIST_FLAG = 1 << 30


@njit(cache=True, nogil=True)
def _histogram_block(bucket, n, base, hist, cand, c):
    """Pass 1 of :func:`bucket_counts_into` over one block of buckets: ``hist[b] += 1`` for each,
    and the positions (``base + i``) of those whose counter carries :data:`_HIST_FLAG` appended
    to ``cand`` from ``c`` on; returns the new ``c``. Neighbouring pixels of a smooth map mostly
    share a bucket, and increments of one counter wait for each other (a store, then a load of the
    same address: ~5 cycles each); so the block is walked as eight interleaved parts (rows ~300
    pixels apart), whose increments hit different counters and overlap (eight rather than four:
    ~25% faster on an AMD EPYC, whose histogram lives in L2). The same counts; candidates in
    another order (their order does not matter)."""
    q = n >> 3
    for t in range(q):
        for u in range(8):
            c = _count_one(bucket, t + u * q, base, hist, cand, c)
    for i in range(8 * q, n):
        c = _count_one(bucket, i, base, hist, cand, c)
    return c


@njit(cache=True, nogil=True)
def _count_one(bucket, i, base, hist, cand, c):
    """``hist[bucket[i]] += 1``, and position ``base + i`` kept as a candidate (``c`` moves on) when
    the counter carries :data:`_HIST_FLAG`; no branch. Returns the new ``c``."""
    h = hist[bucket[i]] + 1
    hist[bucket[i]] = h
    cand[c] = base + i
    return c + (h >> 30)


@njit(cache=True, nogil=True)
def _count_below(bucket, n, bmin):
    low = 0
    for i in range(n):
        low += bucket[i] < bmin
    return low


@njit(cache=True, nogil=True)
def _histogram_above(bucket, n, bmin, base, hist, cand, c, sel):
    """:func:`_histogram_block` of only the buckets ``>= bmin`` (their positions gathered into
    ``sel`` first, without a branch); returns the new ``c``."""
    k = 0
    for i in range(n):
        sel[k] = i
        k += bucket[i] >= bmin
    q = k >> 3
    for t in range(q):
        for u in range(8):
            c = _count_one(bucket, sel[t + u * q], base, hist, cand, c)
    for t in range(8 * q, k):
        c = _count_one(bucket, sel[t], base, hist, cand, c)
    return c


@njit(cache=True, nogil=True)
def bucket_counts(a, idx, use_idx, lo, scale, nb, q):
    """Histogram of ``a`` (or of ``a[idx]`` with ``use_idx``) over ``SUB_BUCKETS + nb - 1`` buckets
    (``nb`` linear ones from ``lo`` with width ``1 / scale``, the lowest split by binary exponent:
    see :data:`SUB_BUCKETS`), how many values were counted apart instead (below every query's
    bucket: see :func:`bucket_counts_into`), and for each query of the sorted, distinct ``q``: how
    many values are below it and how many equal it. Every value must be >= ``lo``; queries may be
    anywhere. (:func:`bucket_counts_into` with fresh work arrays.)"""
    nbt = SUB_BUCKETS + nb - 1
    m = idx.size if use_idx else a.size
    hist = np.empty(nbt, np.int32)
    start = np.empty(nbt + 1, np.int64)
    mark = np.zeros(nbt, np.uint8)
    cand = np.empty(m + 1, np.int64)
    below, equal, _, _, _, _, _, low = bucket_counts_into(a, idx, use_idx, lo, scale, nb, q, hist, start, mark, cand,
                                                          0, 0.0, 0.0, False)
    return hist, low, below, equal


@njit(cache=True, nogil=True)
def bucket_counts_into(a, idx, use_idx, lo, scale, nb, q, hist, start, mark, cand, kth, klo, khi, shift):
    """:func:`bucket_counts` in given work arrays, reused from call to call (a fresh array of a
    few hundred kB costs page faults every time): ``hist`` (int32) and ``start`` (int64, one more)
    of ``SUB_BUCKETS + nb - 1`` elements, overwritten (``start`` only where queries fall: it is
    never cleared); ``mark`` (uint8, as many) is no longer used (kept for callers; left as given);
    ``cand`` (int64) at least one more than the values counted. The histogram is left in ``hist``,
    except that where a block of values has many in buckets below every query's (and the kth
    bracket's) bucket, those are only counted (``low``): they lie below every query whatever their
    bucket, and incrementing their counters is most of a pass's time on a map whose values span
    orders of magnitude (a leave-one-out density: two thirds of its pixels, far from everyone's
    fixations). A query equal to ``lo`` (AUC-Borji's threshold 0) has nothing below it; the values
    equal to it are counted in the same pass. At most 2**30 - 1 values.

    With ``kth > 0``, the same pass also finds the kth-largest value (as
    :func:`kth_largest_bracketed` does, given a bracket ``klo <= v <= khi`` from a sample): the
    values in the bracket's buckets are collected with the query candidates, the histogram says
    which bucket holds the answer, and only that bucket's values are sorted.

    With ``shift`` (and no ``idx``), the same pass also adds up ``sum(a - lo)`` exactly as
    :func:`shifted_sum` does (the same blocks, in the same order: the same number), so that the MIT
    normalisation of the map costs no pass of its own.

    Returns ``(below, equal, found, v, greater, equal_v, shifted, low)``; ``found`` is False when
    no kth was asked or the bracket missed (then the caller finds it otherwise); ``shifted`` is 0.0
    unless asked; ``low``: the values counted apart, not in ``hist``."""
    ab = a.view(np.int64)
    fbuf = np.empty(1, np.float64)
    ibuf = fbuf.view(np.int64)
    top = -1
    if scale > 0.0:
        fbuf[0] = lo + 1.0 / scale  # the upper end of the lowest linear bucket
        top = _order_key(ibuf[0]) >> _SUB_SHIFT
        if top < 0:  # a negative upper end: keys fall with magnitude; keep it simple, no split
            top = -1
    nq = q.size
    qb = np.empty(nq, np.int64)  # each query's bucket; nondecreasing, as q is sorted
    skip = 0  # queries below lo: nothing is below or equal them
    for j in range(nq):
        if q[j] < lo:
            qb[j] = -1
            skip += 1
        else:
            fbuf[0] = q[j]
            qb[j] = _bucket2(q[j], ibuf[0], lo, scale, nb, top)
    at_lo = skip < nq and q[skip] == lo  # nothing below it; the values equal to it counted apart
    if at_lo:
        skip += 1
    hist[:] = 0
    # flagged buckets: those that hold a query (start[b]: the first of them) and those of the
    # kth-largest bracket (start[b]: the first query at or after b)
    for j in range(nq - 1, skip - 1, -1):
        hist[qb[j]] = _HIST_FLAG
        start[qb[j]] = j
    bklo = 0
    bkhi = -1
    if kth > 0:
        fbuf[0] = klo
        bklo = _bucket2(klo, ibuf[0], lo, scale, nb, top)
        fbuf[0] = khi
        bkhi = _bucket2(khi, ibuf[0], lo, scale, nb, top)
        j = skip
        for b in range(bklo, bkhi + 1):
            while j < nq and qb[j] < b:
                j += 1
            hist[b] = _HIST_FLAG
            start[b] = j
    m = idx.size if use_idx else a.size
    nbt = SUB_BUCKETS + nb - 1
    # the lowest flagged bucket: values below it are below every query (nbt: no query to count at)
    bmin = nbt
    if skip < nq:
        bmin = qb[skip]
    if kth > 0:
        bmin = min(bmin, bklo)
    # pass 1: the histogram, and (without a branch: they are few and scattered) the positions
    # of the values in a flagged bucket; only the pages written are touched. Block by block: the
    # buckets first (a loop LLVM vectorises), then the scattered increments, of only the values
    # at or above bmin where a quarter or more of the block lies below it
    c = 0
    low = 0
    eq_lo = 0
    shifted = 0.0
    bucket = np.empty(_BLOCK, np.int64)
    sel = np.empty(_BLOCK, np.int64)
    vals = np.empty(_BLOCK if use_idx else 0, np.float64)
    for s in range(0, m, _BLOCK):
        e = min(s + _BLOCK, m)
        if use_idx:
            for i in range(s, e):
                vals[i - s] = a[idx[i]]
            x = vals[: e - s]
            _buckets(x, vals.view(np.int64)[: e - s], lo, scale, nb, top, bucket)
        else:
            x = a[s:e]
            if shift:
                shifted += _shifted_block(x, lo)
            _buckets(x, ab[s:e], lo, scale, nb, top, bucket)
        if at_lo:
            eq_lo += _count_lt_eq(x, lo)[1]
        under_block = _count_below(bucket, e - s, bmin) if bmin > 0 else 0
        if under_block == e - s:  # far from every query (a leave-one-out map's tail): often all of it
            low += under_block
        elif 4 * under_block >= e - s:
            low += under_block
            c = _histogram_above(bucket, e - s, bmin, s, hist, cand, c, sel)
        else:
            c = _histogram_block(bucket, e - s, s, hist, cand, c)
    for j in range(skip, nq):
        hist[qb[j]] &= _HIST_FLAG - 1
    for b in range(bklo, bkhi + 1):
        hist[b] &= _HIST_FLAG - 1
    # the bucket holding the kth-largest value, and how many values lie in the buckets above it
    # (not below bmin: those buckets may not hold all their values)
    bk = -1
    above = 0
    if kth > 0 and kth <= m:
        bk = nbt - 1
        while bk >= bmin and above + hist[bk] < kth:
            above += hist[bk]
            bk -= 1
        if not (bklo <= bk <= bkhi):
            bk = -1  # the bracket missed
    kvals = np.empty(hist[bk] if bk >= 0 else 0, np.float64)
    nk = 0
    # pass 2: those values against the queries of their bucket, exactly
    below = np.zeros(nq, np.int64)
    equal = np.zeros(nq, np.int64)
    cvals = np.empty(_BLOCK, np.float64)  # block by block: gather, buckets (vectorised), compare
    cbits = cvals.view(np.int64)
    for s in range(0, c, _BLOCK):
        e = min(s + _BLOCK, c)
        for t in range(s, e):
            cvals[t - s] = a[idx[cand[t]]] if use_idx else a[cand[t]]
        _buckets(cvals[: e - s], cbits[: e - s], lo, scale, nb, top, bucket)
        for t in range(e - s):
            v = cvals[t]
            b = bucket[t]
            if b == bk:
                kvals[nk] = v
                nk += 1
            j = start[b]
            while j < nq and qb[j] == b:
                if v < q[j]:
                    below[j] += 1
                elif v == q[j]:
                    equal[j] += 1
                j += 1
    under = low  # values in buckets below the query's bucket
    b0 = 0
    for j in range(skip, nq):
        under += _sum_counts(hist[b0 : qb[j]])
        b0 = max(b0, qb[j])
        below[j] += under
    if at_lo:
        equal[skip - 1] = eq_lo
    if bk < 0:
        return below, equal, False, 0.0, 0, 0, shifted, low
    v, gt, eq = _rank_from_top(kvals, kth - above)
    return below, equal, True, v, above + gt, eq, shifted, low


@njit(cache=True, nogil=True)
def _rank_from_top(vals, r):
    """The r-th largest of the finite ``vals`` (1 <= r <= size), how many exceed it and how many
    equal it; ``vals`` is reordered. A selection with three-way partitions (ties, common in a
    density, go straight to their final place), not a sort: the same value, in linear time, and
    numba's quicksort took ~3 s to compile, on every new machine, in every process that scores."""
    lo = 0
    hi = vals.size - 1
    t = vals.size - r  # the answer's position in ascending order
    while lo < hi:
        a, b, c = vals[lo], vals[(lo + hi) // 2], vals[hi]
        p = max(min(a, b), min(max(a, b), c))  # median of three
        lt = lo  # vals[lo:lt] < p, vals[lt:i] == p, vals[gt + 1 : hi + 1] > p
        i = lo
        gt = hi
        while i <= gt:
            x = vals[i]
            if x < p:
                vals[i] = vals[lt]
                vals[lt] = x
                lt += 1
                i += 1
            elif x > p:
                vals[i] = vals[gt]
                vals[gt] = x
                gt -= 1
            else:
                i += 1
        if t < lt:
            hi = lt - 1
        elif t > gt:
            lo = gt + 1
        else:
            lo = hi = t
            break
    v = vals[t]
    above = 0
    tied = 0
    for x in vals:
        if x > v:
            above += 1
        elif x == v:
            tied += 1
    return v, above, tied


@njit(cache=True, nogil=True)
def _sum_counts(h):
    t = 0
    for i in range(h.size):
        t += h[i]
    return t


@njit(cache=True, nogil=True)
def kth_largest_bracketed(a, lo, hi, k, work):
    """The k-th largest value ``v`` of ``a``, how many values exceed it and how many equal it,
    given a bracket ``lo <= v <= hi`` (from a sample). One pass counts the values above ``hi`` and
    copies those inside the bracket to ``work`` (float64, a's size); those are split again into
    buckets, and only the bucket that holds ``v`` is sorted. Returns ``found=False`` when the
    bracket misses (the caller then sorts everything)."""
    found, v, greater, equal, _ = kth_largest_bracketed_shifted(a, lo, hi, k, work, False, 0.0)
    return found, v, greater, equal


@njit(cache=True, nogil=True)
def _bracket_block(x, lo, hi, work, c):
    """How many values of ``x`` exceed ``hi``; those in ``[lo, hi]`` appended to ``work`` from
    ``c`` on (returns the count and the new ``c``). Without branches: every value is written and
    the position moves on only for those inside (30% faster than branching on an OSIE density)."""
    above = 0
    for i in range(x.size):
        v = x[i]
        above += v > hi
        work[c] = v
        c += (v >= lo) & (v <= hi)
    return above, c


@njit(cache=True, nogil=True)
def kth_largest_bracketed_shifted(a, lo, hi, k, work, shift, off):
    """:func:`kth_largest_bracketed`, and with ``shift`` also ``sum(a - off)`` added up in the same
    pass exactly as :func:`shifted_sum` does (same blocks, same order: the same number). Returns
    ``(found, v, greater, equal, shifted)``; ``shifted`` is computed even when the bracket misses."""
    above = 0
    c = 0
    shifted = 0.0
    for start in range(0, a.size, _BLOCK):
        stop = min(start + _BLOCK, a.size)
        if shift:
            shifted += _shifted_block(a[start:stop], off)
        block_above, c = _bracket_block(a[start:stop], lo, hi, work, c)
        above += block_above
    if not (above < k <= above + c):
        return False, 0.0, 0, 0, shifted
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
    else:  # lo == hi: every value inside the bracket equals it (a constant map), nothing to sort
        return True, lo, above, c, shifted
    v, gt, eq = _rank_from_top(vals, k - above)
    return True, v, above + gt, eq, shifted


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
    # block by block: a branch-free pass that vectorises, which only counts the points outside;
    # a block with any is then walked point by point to find the first
    xmax = w - 0.5
    ymax = h - 0.5
    for start in range(0, x.size, _BLOCK):
        stop = min(start + _BLOCK, x.size)
        if _pixel_block(x[start:stop], y[start:stop], xmax, ymax, h, w, out[start:stop]):
            for i in range(start, stop):
                xi = x[i]
                yi = y[i]
                if not (xi >= -0.5 and xi <= xmax and yi >= -0.5 and yi <= ymax):
                    return i
    return -1


@njit(cache=True, nogil=True)
def scaled_pixel_indices(vx, vy, a, b, dx, fx, dy, fy, shift, h, w, out):
    """:func:`pixel_indices` of the points ``(vx[j] / dx * fx - shift, vy[j] / dy * fy - shift)``
    (in float64, each operation rounded as numpy rounds it) for every ``j`` outside ``[a, b)``, in
    order, into ``out``: the other images' fixations of a shuffled AUC straight from the table of
    every stimulus' fixations, without their float64 coordinates in memory. The rounding and the
    bounds are :func:`_pixel_block`'s, block by block. Returns -1, or the position in ``out`` of
    the first point outside the map."""
    xmax = w - 0.5
    ymax = h - 0.5
    bx = np.empty(_BLOCK, np.float64)
    by = np.empty(_BLOCK, np.float64)
    n = vx.size
    o = 0
    for lo, hi in ((0, a), (b, n)):
        for start in range(lo, hi, _BLOCK):
            stop = min(start + _BLOCK, hi)
            m = stop - start
            for j in range(m):
                bx[j] = np.float64(vx[start + j]) / dx * fx - shift
                by[j] = np.float64(vy[start + j]) / dy * fy - shift
            if _pixel_block(bx[:m], by[:m], xmax, ymax, h, w, out[o : o + m]):
                for j in range(m):
                    if not (bx[j] >= -0.5 and bx[j] <= xmax and by[j] >= -0.5 and by[j] <= ymax):
                        return o + j
            o += m
    return -1


@njit(cache=True, nogil=True)
def _pixel_block(x, y, xmax, ymax, h, w, out):
    outside = 0
    for i in range(x.size):
        xi = x[i]
        yi = y[i]
        inside = (xi >= -0.5) & (xi <= xmax) & (yi >= -0.5) & (yi <= ymax)  # False for NaN
        outside += not inside
        # x + 0.5 >= 0 inside: truncation is the floor; outside, a clipped placeholder (an index
        # in the map, so that the conversion never sees NaN or a huge value)
        # (through int32, which AVX2 converts to in one instruction: see _buckets)
        col = np.int32(min(max(xi + 0.5, 0.0), w - 1.0)) if inside else 0
        row = np.int32(min(max(yi + 0.5, 0.0), h - 1.0)) if inside else 0
        out[i] = np.int64(row) * w + col
    return outside


@njit(cache=True, nogil=True)
def count_both_ge(s, ts, d, td):
    """How many pixels have ``s >= ts`` and ``d >= td``."""
    return _both_block(s, ts, d, td)


@njit(cache=True, nogil=True)
def _both_block(s, ts, d, td):
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


@njit(cache=True, nogil=True)
def counts_at_or_above(a, idx, xs, work):
    """How many of ``a[idx]`` are >= each of ``xs``: the values are gathered once into ``work``
    (float64, at least idx's size), then counted against each bound in a vectorised pass (for a
    few bounds, e.g. the 11 thresholds of AUC_shuffled.m as exact preimages,
    :func:`minmax_preimages`)."""
    m = idx.size
    for i in range(m):
        work[i] = a[idx[i]]
    out = np.zeros(xs.size, np.int64)
    for j in range(xs.size):
        out[j] = _count_ge(work[:m], xs[j])
    return out


@njit(cache=True, nogil=True)
def _count_ge(x, t):
    c = 0
    for i in range(x.size):
        c += x[i] >= t
    return c


@njit(cache=True, nogil=True)
def _count_lt_eq(x, t):
    lt = 0
    eq = 0
    for i in range(x.size):
        v = x[i]
        lt += v < t
        eq += v == t
    return lt, eq


@njit(cache=True, nogil=True)
def gathered_counts(a, idx, q, work):
    """For each query of ``q``: how many of ``a[idx]`` are below it and how many equal it, by
    gathering the values once into ``work`` (float64, at least idx's size) and comparing them with
    each query in a vectorised pass: for a few queries, cheaper than :func:`bucket_counts`."""
    m = idx.size
    for i in range(m):
        work[i] = a[idx[i]]
    below = np.zeros(q.size, np.int64)
    equal = np.zeros(q.size, np.int64)
    for j in range(q.size):
        below[j], equal[j] = _count_lt_eq(work[:m], q[j])
    return below, equal


# Sums run in blocks of _BLOCK elements (vectorised inside a block, then added up): the rounding
# error grows with the block length plus the number of blocks, not with the array's length, as
# with numpy's pairwise sums. (The block loop is a function of its own: LLVM vectorises that.)
_BLOCK = 2048


@njit(cache=True, nogil=True)
def sums(a):
    """``sum(a)`` and ``sum(a * a)``: :func:`stats`'s sums. The same compiled block code, so the
    same bits on any CPU (two loops written alike may be vectorised differently: on AMD Zen 3 a
    separate sum-only loop added in another order than the stats loop)."""
    _, _, s, ss, _ = stats(a)
    return s, ss


#: order keys (see :func:`_order_key`) of the largest finite float64 and of its negative
_KEY_MAX_FINITE = 0x7FEFFFFFFFFFFFFF
_KEY_MIN_FINITE = -0x7FEFFFFFFFFFFFFF


@njit(cache=True, nogil=True, fastmath=_FAST)
def _stats_block(x, xb):
    s = 0.0
    ss = 0.0
    lo = np.int64(0x7FFFFFFFFFFFFFFF)
    hi = np.int64(-0x7FFFFFFFFFFFFFFF - 1)
    for i in range(x.size):
        v = x[i]
        s += v
        ss += v * v
        b = xb[i]
        k = b ^ ((b >> 63) & _MAGNITUDE)  # an integer ordered as the float (-0.0 just below 0.0)
        lo = min(lo, k)
        hi = max(hi, k)
    return s, ss, lo, hi


@njit(cache=True, nogil=True)
def stats(a):
    """``(min, max, sum(a), sum(a * a), finite)`` of a contiguous float64 array in one pass: what
    validating a map and normalising it need, which numpy reads the array three times for. The
    minimum and maximum are found exactly, as integer order keys of the bit patterns (a float
    ``min`` does not vectorise: it must keep NaN); ``finite`` is False when any value is NaN or
    infinite (then min and max are meaningless). The sums are :func:`sums`'s, block for block."""
    ab = a.view(np.int64)
    s = 0.0
    ss = 0.0
    lo = np.int64(0x7FFFFFFFFFFFFFFF)
    hi = np.int64(-0x7FFFFFFFFFFFFFFF - 1)
    for start in range(0, a.size, _BLOCK):
        bs, bss, bl, bh = _stats_block(a[start : start + _BLOCK], ab[start : start + _BLOCK])
        s += bs
        ss += bss
        lo = min(lo, bl)
        hi = max(hi, bh)
    finite = lo >= _KEY_MIN_FINITE and hi <= _KEY_MAX_FINITE
    vlo, vhi = _keys_to_floats(lo, hi)
    return vlo, vhi, s, ss, finite


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


# KLD's logarithm. numpy's float64 ``log`` is vectorised only where the CPU has AVX-512; elsewhere
# (AVX2: AMD EPYC, most laptops) it calls libm once per pixel, ~9 ns: 4.3 ms of a 480k-pixel map,
# a third of the whole metric suite and fifteen times that in the human ceiling. fdlibm's
# ``__ieee754_log`` (Sun, 1993; musl's log.c until 2018) is a few multiplications and one division
# with no table and no branch on the usual path, so LLVM vectorises it: ~1.1 ms a map. Its error is
# below one ulp; it differs from glibc's correctly rounded ``log`` in ~0.3% of values, by one ulp.
_LG1, _LG2, _LG3 = 6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01
_LG4, _LG5, _LG6 = 2.222219843214978396e-01, 1.818357216161805012e-01, 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10
#: bit patterns of the smallest normal float64 and of +infinity: fdlibm's fast path holds between
_NORMAL_MIN_BITS, _INF_BITS = 0x0010000000000000, 0x7FF0000000000000


@njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _log_normal(x):
    """``log(x)`` for a positive, normal, finite float64 (fdlibm ``e_log.c``, without its special
    cases: the caller checks the range). No reassociation (``fastmath`` only contracts products
    and sums into FMAs): the order of the last additions is what keeps the error below one ulp
    (``tests/test_metrics_kernels.py``; with full ``fastmath`` it reached two)."""
    ix = np.float64(x).view(np.int64)
    # the masks make the shifts logical ones (the fast path's x is positive anyway): AVX2 has no
    # vectorised arithmetic shift of 64-bit integers
    hx = ((ix >> 32) & 0x7FFFFFFF) + (0x3FF00000 - 0x3FE6A09E)
    k = ((hx >> 20) & 0xFFF) - 0x3FF  # the exponent, with the mantissa taken to [sqrt(2)/2, sqrt(2))
    hx = (hx & 0x000FFFFF) + 0x3FE6A09E
    f = np.int64((hx << 32) | (ix & 0xFFFFFFFF)).view(np.float64) - 1.0
    hfsq = 0.5 * f * f
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    r = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7))) + w * (_LG2 + w * (_LG4 + w * _LG6))
    dk = np.float64(k)
    return s * (hfsq + r) + dk * _LN2_LO - hfsq + f + dk * _LN2_HI


@njit(cache=True, nogil=True, error_model="numpy")
def log_into(a, out):
    """``out = log(a)`` elementwise, :func:`_log_normal` where ``a`` is positive, normal and finite
    and libm's ``log`` elsewhere (zero, subnormal, negative, infinite, NaN: numpy's results)."""
    bad = _log_block(a, out)
    if bad:
        _log_fix(a, out)


@njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _log_block(a, out):
    """:func:`_log_normal` of each value; returns how many values lie outside its range (their
    results are then wrong and :func:`_log_fix` redoes them). No branch: it vectorises."""
    bad = 0
    for i in range(a.size):
        x = a[i]
        ix = np.float64(x).view(np.int64)
        bad += (ix < _NORMAL_MIN_BITS) | (ix >= _INF_BITS)  # negative bit patterns included
        out[i] = _log_normal(x)
    return bad


@njit(cache=True, nogil=True, error_model="numpy")
def _log_fix(a, out):
    for i in range(a.size):
        ix = np.float64(a[i]).view(np.int64)
        if ix < _NORMAL_MIN_BITS or ix >= _INF_BITS:
            out[i] = np.log(a[i])


@njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _kld_terms(p, poff, c, add, d, eps, out, ratio):
    """``out = log(d / ((p - poff) * c + add) + eps)``, KLD's logarithm, for one block: the ratios
    first, into ``ratio`` (a work array of the block's size, not ``out``: LLVM does not vectorise a
    loop over an array that it writes in place, where its overlap check fails), then their
    logarithms. Two loops: each vectorised on its own, they ran 10-15% faster than one loop doing
    both (on an AMD EPYC, Zen 3; the same numbers)."""
    for i in range(p.size):
        ratio[i] = d[i] / ((p[i] - poff) * c + add) + eps
    bad = _log_block(ratio, out)
    if bad:  # values outside fdlibm's range (an underflowing ``add``): libm's log, for all of them
        for i in range(p.size):
            out[i] = np.log(ratio[i])


@njit(cache=True, nogil=True)
def kld_sum(p, poff, c, add, d, eps):
    """``sum(d * log(d / ((p - poff) * c + add) + eps))``: KLD's sum, block by block (the ratio and
    its logarithm in a block-sized buffer that stays in cache, then its inner product with ``d``).
    Not ``fastmath`` itself: a caller's flags reach the functions it calls, and the logarithm's
    error bound needs its additions in order (the inner product sets its own flags)."""
    t = np.empty(_BLOCK)
    r = np.empty(_BLOCK)
    s = 0.0
    for start in range(0, p.size, _BLOCK):
        stop = min(start + _BLOCK, p.size)
        y = d[start:stop]
        _kld_terms(p[start:stop], poff, c, add, y, eps, t[: stop - start], r[: stop - start])
        s += _dot_block(y, t[: stop - start])
    return s


@njit(cache=True, nogil=True)
def density_pass(s, d, do_dot, do_sim, sim_poff, sim_doff, sim_c, do_kld, kld_poff, kld_c, kld_add, kld_eps,
                 do_both, ts, td):
    """CC's ``dot(s, d)``, SIM's :func:`sim_sum`, KLD's :func:`kld_sum` and the top-k IoU's
    :func:`count_both_ge` in one pass over the map and the density, block by block (each block is
    read from memory once and then from cache), each part only if asked. Returns the dot product,
    the SIM sum, the KLD sum and the count; each is the number its own kernel gives, to the bit."""
    n = s.size
    dt = sm = kl = 0.0
    both = 0
    t = np.empty(_BLOCK)
    r = np.empty(_BLOCK)
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        x = s[start:stop]
        y = d[start:stop]
        if do_dot:
            dt += _dot_block(x, y)
        if do_sim:
            sm += _sim_block(x, sim_poff, y, sim_doff, sim_c)
        if do_kld:
            _kld_terms(x, kld_poff, kld_c, kld_add, y, kld_eps, t[: stop - start], r[: stop - start])
            kl += _dot_block(y, t[: stop - start])
        if do_both:
            both += _both_block(x, ts, y, td)
    return dt, sm, kl, both


# --- leave-one-subject-out sums (the human ceiling) ------------------------------------------------


@njit(cache=True, nogil=True)
def _weighted_prefix_step(p, acc, row, z):
    for j in range(row.size):
        s = acc[j]
        p[j] = s
        acc[j] = s + z * row[j]


@njit(cache=True, nogil=True)
def _weighted_suffix_step(p, acc, row, z, out):
    for j in range(row.size):
        v = z * row[j]
        s = acc[j]
        out[j] = p[j] + s
        acc[j] = s + v


@njit(cache=True, nogil=True)
def _keys_to_floats(lo, hi):
    """Order keys (see :func:`stats`) back to the float64 values they stand for."""
    ibuf = np.empty(2, np.int64)
    ibuf[0] = lo ^ ((lo >> 63) & _MAGNITUDE)  # the key back to the bit pattern (an involution)
    ibuf[1] = hi ^ ((hi >> 63) & _MAGNITUDE)
    fbuf = ibuf.view(np.float64)
    return fbuf[0], fbuf[1]


@njit(cache=True, nogil=True)
def leave_one_out_weighted(owns, z, out):
    """The human ceiling's sweep over one stimulus' subjects: ``out[k]`` (``out`` (m, n), C-contiguous,
    not ``owns``) becomes ``sum over j != k of z[j] * owns[j]`` (``owns`` (m, n): each subject's own
    normalised density, ``z[j]`` its unnormalised total), as a prefix sum from the first subject
    plus a suffix sum from the last: non-negative terms added, never subtracted, so nothing cancels.
    The same pass reads every own density once, so it also returns each one's :func:`stats`
    (``own_stats`` (m, 4): min, max, sum, sum of squares, each the number :func:`stats` gives, block
    for block; ``own_finite`` (m,)), and each leave-one-out sum's total (``totals`` (m,): the sum
    :func:`stats` gives of ``out[k]``). Blocks of :data:`_BLOCK` pixels of all m maps stay in cache
    between the two sweeps."""
    m, n = owns.shape
    nb = _BLOCK
    pre = np.empty((m, nb))
    acc = np.empty(nb)
    s = np.zeros(m)
    ss = np.zeros(m)
    lo = np.full(m, np.int64(0x7FFFFFFFFFFFFFFF))
    hi = np.full(m, np.int64(-0x7FFFFFFFFFFFFFFF - 1))
    totals = np.zeros(m)
    for start in range(0, n, nb):
        stop = min(start + nb, n)
        w = stop - start
        acc[:w] = 0.0
        for k in range(m):
            row = owns[k, start:stop]
            bs, bss, bl, bh = _stats_block(row, row.view(np.int64))
            s[k] += bs
            ss[k] += bss
            lo[k] = min(lo[k], bl)
            hi[k] = max(hi[k], bh)
            _weighted_prefix_step(pre[k, :w], acc[:w], row, z[k])
        acc[:w] = 0.0  # now the suffix sum
        for k in range(m - 1, -1, -1):
            dst = out[k, start:stop]
            _weighted_suffix_step(pre[k, :w], acc[:w], owns[k, start:stop], z[k], dst)
            bs, _, _, _ = _stats_block(dst, dst.view(np.int64))
            totals[k] += bs
    own_stats = np.empty((m, 4))
    own_finite = np.empty(m, np.bool_)
    for k in range(m):
        own_stats[k, 0], own_stats[k, 1] = _keys_to_floats(lo[k], hi[k])
        own_stats[k, 2] = s[k]
        own_stats[k, 3] = ss[k]
        own_finite[k] = lo[k] >= _KEY_MIN_FINITE and hi[k] <= _KEY_MAX_FINITE
    return totals, own_stats, own_finite


@njit(cache=True, nogil=True)
def _scale_block(x, c):
    for i in range(x.size):
        x[i] = x[i] * c


@njit(cache=True, nogil=True)
def scale_stats(a, c):
    """``a *= c`` in place (each value times ``c``, as numpy's ``a *= c``), and :func:`stats` of the
    result from the same pass (block for block: the same numbers). Its own loop, not a flag of
    :func:`stats`: numba types a function that writes its array only for writable arrays, and
    :func:`stats` validates read-only ones (maps straight from Arrow)."""
    ab = a.view(np.int64)
    s = 0.0
    ss = 0.0
    lo = np.int64(0x7FFFFFFFFFFFFFFF)
    hi = np.int64(-0x7FFFFFFFFFFFFFFF - 1)
    for start in range(0, a.size, _BLOCK):
        _scale_block(a[start : start + _BLOCK], c)
        bs, bss, bl, bh = _stats_block(a[start : start + _BLOCK], ab[start : start + _BLOCK])
        s += bs
        ss += bss
        lo = min(lo, bl)
        hi = max(hi, bh)
    finite = lo >= _KEY_MIN_FINITE and hi <= _KEY_MAX_FINITE
    vlo, vhi = _keys_to_floats(lo, hi)
    return vlo, vhi, s, ss, finite
