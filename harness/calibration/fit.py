"""Fitting the calibration: maximum likelihood of the fixations, per cross-validation fold.

Objective
---------
For the maps ``s_e`` of the fit stimuli and their fixations ``x``, maximise
``sum_x log p_e(x)`` with ``p_e`` the calibrated density of :mod:`harness.calibration.model` over
the increments ``delta`` (bounds ``[0, 40]``), the prior weight ``w`` (``[0, 1]``) and the blur
``sigma``. The fixation term is exact (``b'`` interpolated at the fixation's pixel, the prior at that
pixel); the normaliser ``Z_e = sum_pixels exp(g(b'))`` is computed on the block grid,
``sum_blocks area * exp(g(b_block))`` (a quadrature of the upsampled map; the benchmark prints the
difference to the exact full-resolution likelihood, ~1e-3 bits).

How it is fast
--------------
``g`` is piecewise linear, so ``Z_e`` needs only, per map, knot interval ``k`` and one of ``n_sub``
(16) sub-bins ``m`` of the position ``t`` inside the interval, the blocks' total area ``n_ekm`` and
the mean and variance of ``t``: ``Z_e = sum_{k,m} n_ekm exp(g(t_k) + delta_k tbar_ekm +
delta_k^2 var_ekm / 2)`` (the cell's log-mean-exp to second order). The cells come from one pass
over the blocks per blur: a fine histogram of ``b`` per map (2048 levels: area, sum of ``b``, sum of
``b^2``), whose levels are then placed in the cells of the knots. With those, an evaluation of the
likelihood and its analytic gradient costs ``O(maps * K * n_sub + fixations)``, not ``O(pixels)``:
L-BFGS-B (scipy) fits ``(delta, w)`` in milliseconds. The blur changes the histograms, so ``sigma``
is the outer variable: the profile likelihood is evaluated on the grid ``0, f/2, f, 2f, 4f, ...`` up
to ``sigma_max_px`` (default a quarter of the longest side), then refined by bounded Brent search
(6 steps) around the best grid point; each evaluation blurs all fit maps (matrix products or
``gaussian_filter1d`` on the block grid) and warm-starts the inner fit from the best one so far.
The likelihood is not jointly concave (at ``w = 1`` the map's part has no gradient), so the first
blur, and any whose fit ends at ``w ~ 1``, also fits ``delta`` alone at ``w = 0`` (concave: a
log-linear model) and restarts the joint fit from there.

Knots: the interior knots are the quantiles ``1/(K-1), ..., (K-2)/(K-1)`` of ``b'`` at the fit
fixations (the knots put resolution where the likelihood lives), with 0 and 1 as ends and ties
merged, so a constant map (every ``b`` 0) keeps one interval and no free nonlinearity.

Nothing is random: the same maps, fixations, folds and settings give the same parameters. With
``max_fit_maps``, a fold fits on a random subset of its maps, drawn with
``numpy.random.default_rng([seed, fold])`` and recorded.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from . import grid
from .folds import Folds
from .model import CalibrationParams, FoldFit, rescaled

DELTA_MAX = 40.0
#: levels of the fine per-map histogram of b the likelihood's normaliser is computed from
FINE_LEVELS = 2048
LN2 = math.log(2.0)
#: what a run records as its calibration method (bump when the parameterisation or fit changes)
METHOD = "harness.calibration/1: monotone piecewise-linear log-density + Gaussian blur + centre-bias mixture"


# --- prepared inputs -------------------------------------------------------------------------------


@dataclass
class _Priors:
    """Per stimulus size: the prior at full resolution, its log, and its block sums."""

    prior: Any
    factor: int
    cache: dict = field(default_factory=dict)

    def get(self, shape: tuple[int, int]):
        if shape not in self.cache:
            from .model import _prior

            c = _prior(self.prior, shape)
            self.cache[shape] = (np.log(c), grid.block_sum(c, self.factor))
        return self.cache[shape]


@dataclass
class Prepared:
    """Maps on the block grid and their fixations, ready for any number of fits (see
    :func:`prepare`). ``low[e]``: block means of map e (not yet blurred); ``rows``/``cols``: the
    fixations' pixels (rounded as the metrics round); ``log_prior``: the prior at them; ``entry``:
    the map each fixation belongs to."""

    factor: int
    ids: list[str]
    shapes: list[tuple[int, int]]
    low: list[np.ndarray]
    constant: np.ndarray  # bool per map: the raw map is constant
    rows: np.ndarray
    cols: np.ndarray
    entry: np.ndarray
    log_prior: np.ndarray
    priors: _Priors

    def __len__(self) -> int:
        return len(self.ids)

    def n_fixations(self, e: int | None = None) -> int:
        return int(self.rows.size if e is None else np.count_nonzero(self.entry == e))


def _xy(fix) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(fix, "x") and hasattr(fix, "y"):
        return np.asarray(fix.x, np.float64).ravel(), np.asarray(fix.y, np.float64).ravel()
    x, y = fix
    return np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()


def prepare(maps: Iterable[np.ndarray], fixations: Iterable, prior=None, *, ids: Sequence[str] | None = None,
            factor: int = 8) -> Prepared:
    """Downsample ``maps`` (2-D arrays at stimulus resolution; consumed once, so a generator keeps
    memory flat) and index ``fixations`` (per map: an object with ``x``/``y`` arrays, e.g.
    :class:`harness.schema.Fixations`, or an ``(x, y)`` pair; 0-indexed pixel coordinates).
    ``ids``: the stimulus of each map (several maps may share one: the leave-one-subject-out maps of
    a stimulus); default ``"0", "1", ...``. ``prior``: see :func:`harness.calibration.model.calibrated_density`."""

    def items():
        for e, smap in enumerate(maps):
            smap = np.asarray(smap, dtype=np.float64)
            if smap.ndim != 2 or not np.all(np.isfinite(smap)):
                raise ValueError(f"map {e}: a finite 2-D array is needed")
            yield grid.block_mean(smap, factor), smap.shape, bool(smap.max() == smap.min())

    return _prepared(items(), fixations, prior, ids, factor)


def prepare_blocks(blocks: Iterable[np.ndarray], shapes: Iterable[tuple[int, int]], fixations: Iterable, prior=None,
                   *, ids: Sequence[str] | None = None, factor: int = 8,
                   constant: Iterable[bool] | None = None) -> Prepared:
    """:func:`prepare` from maps already reduced to their ``factor`` x ``factor`` block means
    (``grid.block_mean(map, factor)``; e.g. kept by an evaluation between inference and fitting)
    and the stimulus ``shapes``. ``constant``: per map, whether the raw map was constant (default:
    whether its block means are)."""
    const_iter = iter(constant) if constant is not None else None

    def items():
        for e, (low, shape) in enumerate(zip(blocks, shapes)):
            low = np.asarray(low, dtype=np.float64)
            shape = (int(shape[0]), int(shape[1]))
            if low.shape != grid.low_shape(shape, factor) or not np.all(np.isfinite(low)):
                raise ValueError(f"map {e}: finite block means of shape {grid.low_shape(shape, factor)} are needed "
                                 f"for a {shape} stimulus at factor {factor}, got {low.shape}")
            flat = bool(low.max() == low.min()) if const_iter is None else bool(next(const_iter))
            yield low, shape, flat

    return _prepared(items(), fixations, prior, ids, factor)


def _prepared(items, fixations: Iterable, prior, ids, factor: int) -> Prepared:
    from ..metrics import pixel_indices

    factor = int(factor)
    if factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor}")
    priors = _Priors(prior, factor)
    out_ids, shapes, lows, const, rows, cols, entry, lp = [], [], [], [], [], [], [], []
    fixations = iter(fixations)
    for e, (low, shape, flat_map) in enumerate(items):
        try:
            fix = next(fixations)
        except StopIteration:
            raise ValueError("fewer fixation sets than maps") from None
        shape = (int(shape[0]), int(shape[1]))
        x, y = _xy(fix)
        flat = pixel_indices(x, y, shape)
        r, c = np.divmod(flat, shape[1])
        log_c, _ = priors.get(shape)
        out_ids.append(str(ids[e]) if ids is not None else str(e))
        shapes.append(shape)
        lows.append(low)
        const.append(flat_map)
        rows.append(r)
        cols.append(c)
        entry.append(np.full(r.size, e, dtype=np.intp))
        lp.append(log_c[r, c])
    if ids is not None and len(ids) != len(out_ids):
        raise ValueError(f"{len(ids)} ids for {len(out_ids)} maps")
    cat = (lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt))
    return Prepared(factor, out_ids, shapes, lows, np.array(const, dtype=bool), cat(rows, np.intp),
                    cat(cols, np.intp), cat(entry, np.intp), cat(lp, np.float64), priors)


# --- one fit ---------------------------------------------------------------------------------------


@dataclass
class _Data:
    """The fit's sufficient statistics at one blur: histograms and fixation positions."""

    knots: np.ndarray
    n: np.ndarray  # (E, K-1, M) block area per map, interval, sub-bin
    tbar: np.ndarray  # (E, K-1, M) mean position in the interval
    tvar: np.ndarray  # (E, K-1, M) its variance (second-order term of the cell's log-mean-exp)
    log_n: np.ndarray
    idx: np.ndarray  # per fixation: interval
    t: np.ndarray  # per fixation: position in the interval
    entry: np.ndarray  # per fixation: map (0..E-1)
    log_prior: np.ndarray
    log_area: np.ndarray  # per fixation: log(height * width) of its stimulus (for LL vs uniform)


def _groups(prep: Prepared, members: np.ndarray) -> dict:
    out: dict = {}
    for j, e in enumerate(members):
        out.setdefault(prep.shapes[e], []).append(j)
    return out


def _knots(b_fix: np.ndarray, n_knots: int) -> np.ndarray:
    inner = np.quantile(b_fix, np.arange(1, n_knots - 1) / (n_knots - 1)) if b_fix.size and n_knots > 2 else []
    knots = [0.0]
    for v in np.asarray(inner, float):
        if knots[-1] + 1e-3 < v < 1.0 - 1e-3:
            knots.append(float(v))
    knots.append(1.0)
    return np.array(knots)


def _statistics(prep: Prepared, members: np.ndarray, sigma_px: float, n_knots: int, n_sub: int) -> _Data:
    """Blur and rescale the member maps, place the knots, build the histograms."""
    f = prep.factor
    E = members.size
    pos = np.full(len(prep), -1, dtype=np.intp)
    pos[members] = np.arange(E)
    sel = np.flatnonzero(pos[prep.entry] >= 0)  # the members' fixations
    ent = pos[prep.entry[sel]]
    rows, cols = prep.rows[sel], prep.cols[sel]
    b_fix = np.empty(sel.size)
    stacks = []
    for shape, js in _groups(prep, members).items():
        js = np.asarray(js, dtype=np.intp)
        stack = np.stack([prep.low[members[j]] for j in js])
        if sigma_px > 0:
            stack = grid.blur(stack, sigma_px / f, mode="nearest")
        stack = rescaled(stack)
        stack[prep.constant[members[js]]] = 0.0
        stacks.append((shape, js, stack))
        # fixations on these maps: bilinear values at their pixels
        in_group = np.full(E, -1, dtype=np.intp)
        in_group[js] = np.arange(js.size)
        k = np.flatnonzero(in_group[ent] >= 0)
        if k.size:
            b_fix[k] = _sample(stack, in_group[ent[k]], rows[k], cols[k], shape, f)
    knots = _knots(b_fix, n_knots)
    K1 = knots.size - 1
    width = np.diff(knots)

    def locate(b):
        idx = np.clip(np.searchsorted(knots, b, side="right") - 1, 0, K1 - 1)
        t = np.clip((b - knots[idx]) / width[idx], 0.0, 1.0)
        return idx, t

    # one pass over the blocks: a fine histogram of b per map (area and mean b per level), then
    # the levels are placed in the (interval, sub-bin) cells of the knots
    L = FINE_LEVELS
    cnt = np.zeros(E * L)
    sb = np.zeros(E * L)
    sbb = np.zeros(E * L)
    for shape, js, stack in stacks:
        area = grid.block_area(shape, f).ravel()
        bs = stack.reshape(js.size, -1)
        lvl = bs * L
        bins = lvl.astype(np.intp)
        np.minimum(bins, L - 1, out=bins)
        bins += (js * L)[:, None]
        bins = bins.ravel()
        flat = bs.ravel()
        if area.min() == area.max():  # equal blocks (size a multiple of f): no weights array
            cnt += area[0] * np.bincount(bins, minlength=cnt.size)
            sb += area[0] * np.bincount(bins, weights=flat, minlength=cnt.size)
            sbb += area[0] * np.bincount(bins, weights=flat * flat, minlength=cnt.size)
        else:
            wts = np.broadcast_to(area, bs.shape).ravel()
            cnt += np.bincount(bins, weights=wts, minlength=cnt.size)
            sb += np.bincount(bins, weights=wts * flat, minlength=cnt.size)
            sbb += np.bincount(bins, weights=wts * flat * flat, minlength=cnt.size)
    full = np.flatnonzero(cnt)
    w0, w1, w2 = cnt[full], sb[full], sbb[full]
    idx, t = locate(w1 / w0)
    sub = np.minimum((t * n_sub).astype(np.intp), n_sub - 1)
    cell = ((full // L) * K1 + idx) * n_sub + sub
    lo, wd = knots[idx], width[idx]
    size = E * K1 * n_sub
    n = np.bincount(cell, weights=w0, minlength=size).reshape(E, K1, n_sub)
    # first and second moments of t = (b - knot) / width in each cell, exact from the levels' moments
    t1 = np.bincount(cell, weights=(w1 - lo * w0) / wd, minlength=size).reshape(E, K1, n_sub)
    t2 = np.bincount(cell, weights=(w2 - 2.0 * lo * w1 + lo * lo * w0) / (wd * wd), minlength=size)
    occupied = n > 0
    safe = np.where(occupied, n, 1.0)
    tbar = np.where(occupied, t1 / safe, 0.0)
    tvar = np.where(occupied, np.maximum(t2.reshape(E, K1, n_sub) / safe - tbar * tbar, 0.0), 0.0)
    log_n = np.where(occupied, np.log(safe), -np.inf)
    idx, t = locate(b_fix)
    hw = np.array([prep.shapes[e][0] * prep.shapes[e][1] for e in members], dtype=np.float64)
    return _Data(knots, n, tbar, tvar, log_n, idx, t, ent, prep.log_prior[sel], np.log(hw)[ent])


def _sample(stack: np.ndarray, which: np.ndarray, rows: np.ndarray, cols: np.ndarray,
            shape: tuple[int, int], factor: int) -> np.ndarray:
    """``upsample(stack[which[i]])[rows[i], cols[i]]`` for every i (bilinear, as the model upsamples)."""
    r0, r1, rw = grid.bilinear_weights(int(shape[0]), stack.shape[1], float(factor))
    c0, c1, cw = grid.bilinear_weights(int(shape[1]), stack.shape[2], float(factor))
    a, b, wy = r0[rows], r1[rows], rw[rows]
    c, d, wx = c0[cols], c1[cols], cw[cols]
    top = stack[which, a, c] * (1.0 - wx) + stack[which, a, d] * wx
    bottom = stack[which, b, c] * (1.0 - wx) + stack[which, b, d] * wx
    return top * (1.0 - wy) + bottom * wy


def _nll(theta: np.ndarray, d: _Data, want_grad: bool = True):
    """Mean negative log-likelihood per fixation (nats) and its gradient in (delta, w)."""
    K1 = d.knots.size - 1
    delta, w = theta[:K1], float(theta[K1])
    v = np.concatenate(([0.0], np.cumsum(delta)[:-1]))  # g at each interval's left knot
    slope = d.tbar + 0.5 * delta[None, :, None] * d.tvar  # log mean exp(delta t) ~ delta tbar + delta^2 var / 2
    U = v[None, :, None] + delta[None, :, None] * slope + d.log_n  # (E, K1, M)
    umax = U.max(axis=(1, 2))
    P = np.exp(U - umax[:, None, None])
    Z = P.sum(axis=(1, 2))
    log_z = umax + np.log(Z)
    lq = v[d.idx] + delta[d.idx] * d.t - log_z[d.entry]
    a = math.log1p(-w) + lq if w < 1.0 else np.full_like(lq, -np.inf)
    b = math.log(w) + d.log_prior if w > 0.0 else np.full_like(lq, -np.inf)
    lp = np.logaddexp(a, b)
    N = lp.size
    f = -float(lp.sum()) / N
    if not want_grad:
        return f, lp
    r = np.exp(a - lp)  # responsibility of the map's part
    g_w = -float(np.sum(np.exp(d.log_prior - lp) - np.exp(lq - lp))) / N
    # d log q / d delta_j at a fixation: [j < idx] + [j == idx] t - d log Z / d delta_j
    A = np.bincount(d.idx, weights=r, minlength=K1)
    Tfix = np.bincount(d.idx, weights=r * d.t, minlength=K1)
    above = np.concatenate((np.cumsum(A[::-1])[::-1][1:], [0.0]))  # sum over idx > j
    pi = P / Z[:, None, None]
    Pk = pi.sum(axis=2)  # (E, K1)
    Tk = (pi * (d.tbar + delta[None, :, None] * d.tvar)).sum(axis=2)
    dlogz = np.concatenate((np.cumsum(Pk[:, ::-1], axis=1)[:, ::-1][:, 1:], np.zeros((Pk.shape[0], 1))), axis=1) + Tk
    R = np.bincount(d.entry, weights=r, minlength=Pk.shape[0])
    g_delta = -(above + Tfix - R @ dlogz) / N
    return f, np.concatenate((g_delta, [g_w]))


def _inner(d: _Data, init: np.ndarray, fixed_delta: bool, first: bool = True,
           mixture: bool = True) -> tuple[float, np.ndarray]:
    """Best (delta, w) at one blur. The likelihood is concave in ``delta`` for ``w = 0`` (a
    log-linear model) but not jointly: at ``w = 1`` the map's part gets no gradient, so a joint fit
    can stall there. So a joint fit from ``init`` (the warm start) and, at the first blur or when that
    ends at ``w ~ 1``, a fit of ``delta`` at ``w = 0`` followed by a joint fit from it with ``w = 0.5``;
    the best one wins."""
    K1 = d.knots.size - 1
    top = 0.0 if fixed_delta else DELTA_MAX

    def run(x0, w_bounds):
        bounds = [(0.0, top)] * K1 + [w_bounds]
        x0 = np.clip(x0, [lo for lo, _ in bounds], [hi for _, hi in bounds])
        from scipy.optimize import minimize  # here: a raw eval imports this package, not the fit

        res = minimize(_nll, x0, args=(d,), jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"maxiter": 500, "ftol": 1e-12, "gtol": 1e-8})
        return float(res.fun), np.asarray(res.x, dtype=np.float64)

    w_top = 1.0 if mixture else 0.0
    runs = [run(init, (0.0, w_top))]
    if mixture and not fixed_delta and (first or runs[0][1][K1] > 0.999):
        _, x_q = run(np.concatenate((init[:K1], [0.0])), (0.0, 0.0))
        runs.append(run(np.concatenate((x_q[:K1], [0.5])), (0.0, 1.0)))
    return min(runs, key=lambda r: r[0])


def _warm(prev: tuple[np.ndarray, np.ndarray] | None, knots: np.ndarray, n_knots: int) -> np.ndarray:
    """Initial (delta, w) at new knots: the previous nonlinearity re-sampled there, else g(b) = 4 b."""
    if prev is None:
        return np.concatenate((4.0 * np.diff(knots), [0.5]))
    old_knots, old_theta = prev
    old_vals = np.concatenate(([0.0], np.cumsum(old_theta[:-1])))
    vals = np.interp(knots, old_knots, old_vals)
    return np.concatenate((np.maximum(np.diff(vals), 0.0), [old_theta[-1]]))


def sigma_grid(factor: int, sigma_max_px: float) -> list[float]:
    """The blurs the outer search evaluates first: 0, f/2, f, 2f, ... up to ``sigma_max_px``."""
    out, s = [0.0], factor / 2.0
    while s <= sigma_max_px + 1e-9:
        out.append(s)
        s *= 2.0
    return out


def fit_params(prep: Prepared, members: Sequence[int] | None = None, *, n_knots: int = 8, n_sub: int = 16,
               sigma_max_px: float | None = None, refine: int = 6, fold: int = -1,
               with_shuffled: bool = True, prior_mixture: bool = True, shuffled_maps: int = 64) -> FoldFit:
    """Fit one calibration on the maps ``members`` of ``prep`` (default: all); see the module doc.
    ``prior_mixture=False`` fixes the prior weight at 0 (the map alone: for diagnostics, e.g. the
    uniform model as a density). ``shuffled_maps``: how many fit maps (evenly spaced) the sAUC
    baseline, the mean calibrated density, averages."""
    t0 = time.perf_counter()
    members = np.arange(len(prep)) if members is None else np.asarray(members, dtype=np.intp)
    if members.size == 0:
        raise ValueError("no maps to fit the calibration on")
    f = prep.factor
    if sigma_max_px is None:
        sigma_max_px = 0.25 * max(max(s) for s in (prep.shapes[e] for e in members))
    all_constant = bool(prep.constant[members].all())
    cache: dict[float, tuple[float, np.ndarray, np.ndarray]] = {}
    best: list = [None]  # (knots, theta) of the best evaluation so far

    def profile(sigma: float) -> float:
        sigma = float(sigma)
        if sigma in cache:
            return cache[sigma][0]
        d = _statistics(prep, members, sigma, n_knots, n_sub)
        nll, theta = _inner(d, _warm(best[0], d.knots, n_knots), all_constant, first=best[0] is None,
                            mixture=prior_mixture)
        cache[sigma] = (nll, d.knots, theta)
        if best[0] is None or nll <= min(v[0] for v in cache.values()):
            best[0] = (d.knots, theta)
        return nll

    if all_constant:
        profile(0.0)
    else:
        sigmas = sigma_grid(f, sigma_max_px)
        vals = [profile(s) for s in sigmas]
        i = int(np.argmin(vals))
        lo, hi = sigmas[max(i - 1, 0)], sigmas[min(i + 1, len(sigmas) - 1)]
        if refine and hi > lo:
            from scipy.optimize import minimize_scalar

            minimize_scalar(profile, bounds=(lo, hi), method="bounded",
                            options={"xatol": max(0.05 * sigmas[i], 0.25), "maxiter": int(refine)})
    sigma = min(cache, key=lambda s: (cache[s][0], s))
    nll, knots, theta = cache[sigma]
    params = CalibrationParams(tuple(float(k) for k in knots), tuple(float(v) for v in theta[:-1]),
                               float(sigma), float(theta[-1]), f)
    d = _statistics(prep, members, sigma, n_knots, n_sub)
    _, lp = _nll(theta, d, want_grad=False)
    ll_bits = float(np.mean(lp + d.log_area) / LN2) if lp.size else float("nan")
    shuffled = _mean_density(prep, members, params, shuffled_maps) if with_shuffled else None
    ids = tuple(dict.fromkeys(prep.ids[e] for e in members))
    return FoldFit(fold, params, ids, int(members.size), int(d.idx.size), ll_bits, time.perf_counter() - t0,
                   len(cache), shuffled, float(d.idx.size) / members.size)


def _mean_density(prep: Prepared, members: np.ndarray, params: CalibrationParams, at_most: int) -> dict:
    """The sAUC baseline: per stimulus size, the mean calibrated density (full resolution, as
    :func:`~harness.calibration.model.calibrated_density` makes it) of at most ``at_most`` member
    maps, evenly spaced (no randomness). Full resolution and the same code as the scored densities,
    so a model that predicts the same density for every stimulus (the baselines) has a shuffled
    baseline equal to its density and a constant sAUC map (chance), not interpolation noise."""
    from .model import calibrated_density_from_blocks

    pick = members[np.unique(np.linspace(0, members.size - 1, min(members.size, int(at_most))).astype(int))]
    sums: dict = {}
    for e in pick:
        shape = prep.shapes[e]
        log_c, _ = prep.priors.get(shape)
        p = calibrated_density_from_blocks(prep.low[e], shape, params, np.exp(log_c),
                                           constant=bool(prep.constant[e]))
        if shape in sums:
            sums[shape][0] += p
            sums[shape][1] += 1
        else:
            sums[shape] = [p, 1]
    return {shape: total / count for shape, (total, count) in sums.items()}


# --- cross-validated fits ------------------------------------------------------------------------


@dataclass
class Calibration:
    """Per-fold calibrations of one model on one data set: :meth:`params_for` gives the parameters
    a stimulus is scored with, fitted on the other folds' stimuli only."""

    folds: Folds
    fits: list[FoldFit]
    settings: dict

    def fit_for(self, stimulus_id: str) -> FoldFit:
        k = self.folds.fold(stimulus_id)
        return next(f for f in self.fits if f.fold == k)

    def params_for(self, stimulus_id: str) -> CalibrationParams:
        return self.fit_for(stimulus_id).params

    def to_json(self, with_ids: bool = True) -> dict:
        return {"folds": self.folds.to_json(), "settings": dict(self.settings),
                "fits": [f.to_json(with_ids) for f in self.fits]}


def fit_calibration(maps: Iterable[np.ndarray] | Prepared, fixations: Iterable | None = None, prior=None, *,
                    ids: Sequence[str] | None = None, folds: int | Folds = 5, seed: int = 0, factor: int = 8,
                    n_knots: int = 8, n_sub: int = 16, sigma_max_px: float | None = None,
                    max_fit_maps: int | None = None, refine: int = 6, prior_mixture: bool = True,
                    shuffled_maps: int = 64, progress: Callable[[str], None] | None = None) -> Calibration:
    """Cross-validated calibration of one model's maps (Kuemmerer et al. 2015; 2018).

    ``maps``: the model's attention maps at stimulus resolution (or a :class:`Prepared`);
    ``fixations``: per map, the fixations it is scored on; ``ids``: the stimulus of each map (folds
    are by stimulus; several maps may share a stimulus). ``folds``: the number of folds (assigned by
    :func:`harness.calibration.folds.fold_of` from ``seed``) or a :class:`Folds`. For fold ``k`` the
    parameters are fitted on the maps of every other fold, so a stimulus is never scored with
    parameters that saw its fixations. ``factor``: block downsampling of the fit (8: 800x600 ->
    100x75); ``n_knots``: knots of the nonlinearity (K - 1 free increments); ``max_fit_maps``: fit
    each fold on at most this many maps (a seeded random subset, recorded); ``prior_mixture=False``:
    no mixture with the prior (``w = 0``); ``shuffled_maps``: fit maps averaged into each fold's sAUC
    baseline (0: none; ~25 ms each on OSIE).

    Returns a :class:`Calibration`: one :class:`~harness.calibration.model.FoldFit` per fold that has
    maps to score (its parameters, fit stimuli, training log-likelihood, time) and the fold assignment."""
    prep = maps if isinstance(maps, Prepared) else prepare(maps, fixations, prior, ids=ids, factor=factor)
    if isinstance(folds, Folds):
        assignment = folds
        missing = [i for i in dict.fromkeys(prep.ids) if i not in assignment.assignment]
        if missing:
            raise ValueError(f"{len(missing)} stimuli have no fold, e.g. {missing[0]!r}")
    else:
        assignment = Folds.assign(prep.ids, int(folds), seed)
    fold_of_map = np.array([assignment.fold(i) for i in prep.ids], dtype=np.intp)
    fits = []
    for k in range(assignment.n_folds):
        if not (fold_of_map == k).any():  # it scores nothing (a small --limit); each fold's fit is its own
            continue
        members = np.flatnonzero(fold_of_map != k)
        if max_fit_maps is not None and members.size > max_fit_maps:
            rng = np.random.default_rng([int(assignment.seed), k])
            members = np.sort(rng.choice(members, size=int(max_fit_maps), replace=False))
        fit = fit_params(prep, members, n_knots=n_knots, n_sub=n_sub, sigma_max_px=sigma_max_px,
                         refine=refine, fold=k, prior_mixture=prior_mixture, with_shuffled=shuffled_maps > 0,
                         shuffled_maps=max(int(shuffled_maps), 1))
        fits.append(fit)
        if progress is not None:
            progress(f"fold {k}: {fit.params} ll {fit.train_ll_bits:.4f} bits, {fit.seconds:.2f} s")
    settings = {"method": METHOD, "factor": prep.factor, "n_knots": n_knots, "n_sub": n_sub,
                "sigma_max_px": sigma_max_px, "max_fit_maps": max_fit_maps, "refine": refine,
                "seed": int(assignment.seed), "prior_mixture": bool(prior_mixture),
                "sauc_baseline": f"mean calibrated density of up to {int(shuffled_maps)} evenly spaced fit maps, "
                                 "per stimulus size",
                "objective": "sum of log-likelihoods of the fit fixations (maximum likelihood)",
                "optimizer": "L-BFGS-B (scipy) on (increments, prior weight); grid + bounded Brent on sigma"}
    return Calibration(assignment, fits, settings)
