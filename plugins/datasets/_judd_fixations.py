"""Fixation detection of the MIT1003 database, ported line by line from the authors' MATLAB.

MIT1003 (Judd et al., ICCV 2009) ships raw eye-tracker samples (240 Hz), not fixations. Its README
(``DatabaseCode/README.txt``) says: "To change the raw eye tracker data to more useful fixation and
saccade data, use checkFixations.m", and every published use of the data (the authors' own
``showEyeData.m``, pysaliency's ``get_mit1003``, which runs the MATLAB file through Octave) derives
the fixations with that function. This module is a faithful port of its algorithm ``'A'`` (the only
one the file runs: ``algo = 'A'`` is hard-coded), so the numbers match the published fixations
without MATLAB. Read from ``DatabaseCode/checkFixations.m`` (Barbara Hidalgo-Sotelo, 12/2005, rev.
6/2006), as mirrored in github.com/Riadsala/SaccadicBiases at ``data/Judd2009/DatabaseCode/``.

What the algorithm does: sample-to-sample displacement, smoothed by a causal 4-sample moving
average (MATLAB ``filter``); "velocity" as the sum of 5 smoothed displacements over 4/240 s in two
windows one sample apart; their difference is the "acceleration". Samples with acceleration above
34 px/deg * 6 deg/s form saccade onsets; a saccade ends where the acceleration first falls below
minus that threshold (searching at most 25 samples); fixations shorter than 12 samples (50 ms)
between two saccades are merged away; every run of non-saccade samples is a fixation whose position
is the median of its non-NaN samples.

Quirks kept on purpose, because they decide which fixations the dataset contains:

* ``length(n)`` of an ``L x 2`` matrix is ``max(L, 2)``, so "fewer than 3 saccade rows" checks compare
  that, not the row count;
* ``if checkSac(eachsac2) == last`` compares a *vector* with a scalar: MATLAB's ``if`` is true only
  when every element is (and the vector is non-empty);
* when the deceleration search runs out of time in the same step in which it succeeds, the saccade
  is still treated as "no deceleration found".

Indices inside are 0-based; the returned ``start``/``end`` are 1-based sample numbers as in MATLAB
(``Fix.start``/``Fix.end``), so that ``(start - 1) / 240`` s is the onset after stimulus onset.
Verified against the MATLAB file run under GNU Octave 7.3: identical output (to the last bit) on 840
synthetic, random-walk, noise, NaN-gap and blink traces; tests/test_formats_mit1003.py keeps three of
them with Octave's output as golden values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLING_RATE = 240.0  # Hz, checkFixations.m: samplingRate = 240
PX_PER_DEG = 34.0  # checkFixations.m: "based on current ET setup (display= 1024x768px = 40.5x30cm; distance=75cm)"
DEG_PER_SEC = 6.0
ACCEL_CRIT = PX_PER_DEG * DEG_PER_SEC
WIN = 4
STEP = 1
FIX_DUR_CUT_PTS = int(np.floor(50.0 * SAMPLING_RATE / 1000.0 + 0.5))  # MATLAB round(12) = 12


class CheckFixationsError(ValueError):
    """The MATLAB code would stop with an index error on this trace (never seen in MIT1003)."""


@dataclass(frozen=True)
class JuddFixations:
    start: np.ndarray  # 1-based first sample of each fixation (Fix.start)
    end: np.ndarray  # 1-based last sample (Fix.end)
    duration_ms: np.ndarray  # Fix.duration
    x: np.ndarray  # Fix.medianXY(:, 1)
    y: np.ndarray  # Fix.medianXY(:, 2)

    def __len__(self) -> int:
        return int(self.start.size)


def _nanmedian(a: np.ndarray) -> float:
    a = a[~np.isnan(a)]
    return float(np.median(a)) if a.size else float("nan")


def _single_fixation(x: np.ndarray, y: np.ndarray) -> JuddFixations:
    """The "no saccades" exit of checkFixations: the whole trace is one fixation."""
    n = x.size
    return JuddFixations(
        start=np.array([1]), end=np.array([n]),
        duration_ms=np.array([1000.0 * n / SAMPLING_RATE]),
        x=np.array([_nanmedian(x)]), y=np.array([_nanmedian(y)]),
    )


def _acceleration(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    n = x.size
    pos_change = np.concatenate([[0.0], np.sqrt(np.diff(x) ** 2 + np.diff(y) ** 2)])
    # filter(ones(1,4)/4, 1, posChange): causal moving average with zero initial state
    padded = np.concatenate([np.zeros(WIN - 1), pos_change])
    sm = sum(padded[k:k + n] for k in range(WIN)) / WIN
    vel = np.zeros((n, 2))
    for k in range(1, n - WIN - STEP):  # MATLAB k = 2 : length-winSize-stepSize
        vel[k, 0] = sm[k:k + WIN + 1].sum() / (WIN / SAMPLING_RATE)
        vel[k, 1] = sm[k + STEP:k + WIN + STEP + 1].sum() / (WIN / SAMPLING_RATE)
    return vel[:, 1] - vel[:, 0]


def _mlen(rows: int) -> int:
    """MATLAB ``length`` of a rows x 2 matrix."""
    return max(rows, 2) if rows else 0


def check_fixations(eye_data) -> JuddFixations:
    """Port of ``[data, Fix, Sac] = checkFixations(data)`` returning ``Fix``'s per-fixation fields.

    ``eye_data`` is the ``N x 2`` (or wider) ``DATA(1).eyeData`` array: x, y in image pixels.
    """
    # MATLAB computes with IEEE infinities and NaN silently (a huge sample's square is Inf, Inf - Inf
    # is NaN), and so does the port: numpy's warnings about it would only be noise in a conversion
    with np.errstate(over="ignore", invalid="ignore"):
        return _check_fixations(eye_data)


def _check_fixations(eye_data) -> JuddFixations:
    data = np.asarray(eye_data, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] < 2 or data.shape[0] < 1:
        raise CheckFixationsError(f"eyeData must be an N x 2 array, got shape {data.shape}")
    x, y = data[:, 0], data[:, 1]
    n_samples = x.size
    length_data = max(data.shape)  # MATLAB length(data)
    accel = _acceleration(x, y)
    with np.errstate(invalid="ignore"):
        above = accel > ACCEL_CRIT
        below = accel < -ACCEL_CRIT

    # ------------------------------------------------------------------ candidate saccade samples
    check_sac = np.flatnonzero(above) + 1  # 1-based sample numbers
    if check_sac.size < 3:
        return _single_fixation(x, y)
    d = np.diff(check_sac)
    each1 = list(np.flatnonzero(d == 1) + 1)  # 1-based indices into check_sac
    each2 = list(np.flatnonzero(d > 1) + 1)
    e2 = np.asarray(each2)
    each3 = list(e2[np.flatnonzero(np.diff(e2) == 1) + 1]) if e2.size > 1 else []
    L = check_sac.size
    last_is_run = check_sac[-1] - check_sac[-2] == 1
    if last_is_run:
        each1.append(L)
    else:
        each3.append(L)
    nmat = np.zeros((L, 2), dtype=np.int64)
    nmat[:, 0] = check_sac
    for idx in each1:
        nmat[idx - 1, 1] = 1
    for idx in each2:
        nmat[idx - 1, 1] = 2
    for idx in each3:
        nmat[idx - 1, 1] = 3
    if last_is_run:
        nmat[-1, 1] = 2
    else:
        nmat = nmat[:-1]
        each2 = each2[:-1]
    for idx in each2:  # eachsac3 = eachsac2 + 1
        nmat[idx, 1] = 3
    if nmat[0, 1] == 1:
        nmat[0, 1] = 3

    # ------------------------------------------------------------------ keep contiguous saccades
    kept: list[np.ndarray] = []
    if nmat[0, 1] == 3 and nmat[1, 1] == 1:
        kept.append(nmat[0].copy())
    ln = _mlen(nmat.shape[0])
    for i in range(2, ln):  # MATLAB i = 2 : length(n)-1 (1-based)
        r = i - 1
        lab = nmat[r, 1]
        if lab == 3:
            if nmat[r + 1, 1] == 1:
                kept.append(nmat[r].copy())
        elif lab == 1:
            kept.append(nmat[r].copy())
        elif lab == 2:
            if nmat[r - 1, 1] == 1 and nmat[r + 1, 1] == 3:
                kept.append(nmat[r].copy())
        if i == ln - 1:
            last_kept = kept[-1][0] if kept else 0  # nn starts as [0 0]
            if nmat[-1, 0] - last_kept == 1:
                kept.append(nmat[r + 1].copy())
    if not kept:
        kept_arr = np.zeros((1, 2), dtype=np.int64)  # nn = [0 0] untouched
    else:
        kept_arr = np.vstack(kept)
    if _mlen(kept_arr.shape[0]) < 3:
        return _single_fixation(x, y)

    # ------------------------------------------------------------------ saccade ends (deceleration)
    ends_rows = np.flatnonzero(kept_arr[:, 1] == 2)
    starts_rows = np.flatnonzero(kept_arr[:, 1] == 3)
    nonzero = np.flatnonzero(accel != 0)
    last_nonzero = nonzero[-1] + 1 if nonzero.size else None
    good: list[int] = []
    blah: list[int] = []
    for s, row in enumerate(ends_rows):
        check = np.array([kept_arr[row, 0] + 1, kept_arr[row, 0] + 2])
        cross = below[check - 1]
        stop_after = 25
        time_ok = True
        while not (cross[0] and not cross[1]) and time_ok:
            check = check + 1
            if check.max() > n_samples:
                raise CheckFixationsError("deceleration search ran past the end of the trace")
            cross = below[check - 1]
            stop_after -= 1
            time_ok = check.max() < length_data and stop_after > 0
        if not time_ok:
            ends_all = kept_arr[ends_rows, 0]
            if ends_all.size and last_nonzero is not None and np.all(ends_all == last_nonzero):
                good.append(s)
                blah.append(accel.size)
        else:
            good.append(s)
            blah.append(int(check[0]))

    if good:
        good_arr = np.asarray(good)
        if good_arr.max() >= starts_rows.size:
            raise CheckFixationsError("saccade ends and onsets are not paired")
        good2 = ends_rows[good_arr]
        good3 = starts_rows[good_arr]
        decel = np.column_stack([kept_arr[good2, 0], np.asarray(blah)])
        real = len(blah)
        if real > 1:
            too_short = np.flatnonzero(kept_arr[good3[1:], 0] - decel[:-1, 1] <= FIX_DUR_CUT_PTS)  # 0-based k
            keep_start = np.setdiff1d(np.arange(real), too_short + 1)
            keep_end = np.setdiff1d(np.arange(real), too_short)
            start_sac = kept_arr[good3[keep_start], 0]
            end_sac = decel[keep_end].copy()
        else:
            start_sac = kept_arr[good3, 0]
            end_sac = decel[-1:].copy()
        if n_samples - decel[-1, 1] <= FIX_DUR_CUT_PTS:
            end_sac[-1, 1] = n_samples
    else:
        start_sac = np.zeros(0, dtype=np.int64)
        end_sac = np.zeros((0, 2), dtype=np.int64)

    # ------------------------------------------------------------------ label samples
    labels = np.zeros(n_samples, dtype=np.int64)
    sac_end = end_sac[:, 1]
    if start_sac.size > sac_end.size:
        raise CheckFixationsError("more saccade onsets than ends")
    inner = [np.arange(a + 1, b) for a, b in zip(start_sac, sac_end[:start_sac.size])]
    labels[start_sac - 1] = 3
    labels[sac_end - 1] = 2
    for seg in inner:
        labels[seg - 1] = 1
    each3_s = np.flatnonzero(labels == 3) + 1
    each2_s = np.flatnonzero(labels == 2) + 1
    fix_samples = np.flatnonzero(labels == 0) + 1
    if n_samples - fix_samples.size < 3:  # length(checkSac) < 3
        return _single_fixation(x, y)
    if fix_samples.size == 0 or each2_s.size == 0 or each3_s.size == 0:
        raise CheckFixationsError("trace without a fixation sample or a saccade boundary")

    if each3_s.size == 1:
        if each2_s[-1] != length_data:
            fix_start = np.concatenate([[fix_samples[0]], each2_s + 1])
        else:
            fix_start = np.array([fix_samples[0]])
    else:
        fix_start = np.concatenate([[fix_samples[0]], each2_s[:-1] + 1])
        if each2_s[-1] != length_data:
            fix_start = np.append(fix_start, each2_s[-1] + 1)
    case1 = each3_s[0] == 1
    case2 = each2_s[-1] == length_data
    if not case1 and not case2:
        fix_end = np.append(each3_s - 1, length_data)
    elif case1 and not case2:
        fix_end = np.append(each3_s[1:] - 1, length_data)
    elif not case1 and case2:
        fix_end = each3_s - 1
    else:
        fix_end = each3_s[1:] - 1
    if fix_end.size < fix_start.size:
        raise CheckFixationsError("more fixation onsets than ends")
    fix_end = fix_end[:fix_start.size]

    mx, my = [], []
    for a, b in zip(fix_start, fix_end):
        mx.append(_nanmedian(x[a - 1:b]))
        my.append(_nanmedian(y[a - 1:b]))
    return JuddFixations(
        start=fix_start.astype(np.int64), end=fix_end.astype(np.int64),
        duration_ms=1000.0 * (fix_end - fix_start + 1) / SAMPLING_RATE,
        x=np.asarray(mx), y=np.asarray(my),
    )
