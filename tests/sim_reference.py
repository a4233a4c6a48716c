"""Float64 pair-by-pair reference of every DESIGN §4 metric, written from the formulas alone.

Deliberately naive and independent of pysim.similarity: HSIC via traces (Song et al. 2012 for
the unbiased estimator, tr(KHLH) for the biased one), RDMs via numpy/scipy, kNN via argsort.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist, pdist, squareform
from scipy.stats import pearsonr, spearmanr


def normalise(x: np.ndarray, mode: str = "l2") -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True) if mode == "l2" else x


def hsic_unbiased(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741
    n = len(k)
    k, l = k.copy(), l.copy()  # noqa: E741
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l, 0.0)
    ones = np.ones(n)
    term = (np.trace(k @ l) + (ones @ k @ ones) * (ones @ l @ ones) / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * (ones @ k @ l @ ones))
    return term / (n * (n - 3))


def hsic_biased(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741
    n = len(k)
    h = np.eye(n) - np.ones((n, n)) / n
    return np.trace(k @ h @ l @ h) / (n - 1) ** 2


def kernel(x: np.ndarray, spec) -> np.ndarray:
    if spec.kernel == "linear":
        return x @ x.T
    sigma = spec.sigma
    if spec.sigma_mode == "median":
        sigma = sigma * np.median(pdist(x))
    return np.exp(-cdist(x, x, "sqeuclidean") / (2 * sigma**2))


def cka(x: np.ndarray, y: np.ndarray, spec) -> float:
    hsic = hsic_unbiased if spec.unbiased else hsic_biased
    k, l = kernel(x, spec), kernel(y, spec)  # noqa: E741
    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def rdm(x: np.ndarray, method: str) -> np.ndarray:
    if method == "correlation":
        return 1.0 - np.corrcoef(x)
    if method == "cosine":
        return squareform(pdist(x, "cosine"))
    return squareform(pdist(x, "euclidean"))


def rsa(x: np.ndarray, y: np.ndarray, spec) -> float:
    iu = np.triu_indices(len(x), k=1)
    a, b = rdm(x, spec.rsa_method)[iu], rdm(y, spec.rsa_method)[iu]
    if spec.corr_method == "cosine":  # uncentred: a.b / (|a| |b|)
        return float(a @ b / np.sqrt((a @ a) * (b @ b)))
    corr = pearsonr if spec.corr_method == "pearson" else spearmanr
    return float(corr(a, b)[0])


def mutual_knn(x: np.ndarray, y: np.ndarray, spec) -> float:
    def neighbours(z):
        z = z / np.linalg.norm(z, axis=1, keepdims=True)
        cos = z @ z.T
        np.fill_diagonal(cos, -np.inf)
        return np.argsort(-cos, axis=1, kind="stable")[:, :spec.k]

    nx, ny = neighbours(x), neighbours(y)
    return float(np.mean([len(set(a) & set(b)) / spec.k for a, b in zip(nx, ny, strict=True)]))


def similarity(x: np.ndarray, y: np.ndarray, spec) -> float:
    """The metric `spec` between two feature matrices (already prepared)."""
    if spec.method == "cka":
        return cka(x, y, spec)
    if spec.method == "rsa":
        return rsa(x, y, spec)
    return mutual_knn(x, y, spec)


def reference_matrices(features: dict[str, np.ndarray], specs, normalize: str = "l2"
                       ) -> dict[str, np.ndarray]:
    """Every metric's m x m matrix, pair by pair in float64 (diagonal computed, not set)."""
    xs = [normalise(f, normalize) for f in features.values()]
    out = {}
    for spec in specs:
        mat = np.empty((len(xs), len(xs)))
        for i, x in enumerate(xs):
            for j, y in enumerate(xs[i:], start=i):
                mat[i, j] = mat[j, i] = similarity(x, y, spec)
        out[spec.id] = mat
    return out


# --- PAIRWISE families (issue 23), written from the papers' definitions --------------------

def _whitener(x: np.ndarray) -> np.ndarray:
    """Sigma^{-1/2} of the centred features on their range (eigenvalues above matrix_rank's
    tolerance), the route of the CCA papers (covariances), not pysim's (a thin SVD)."""
    xc = x - x.mean(axis=0)
    lam, vec = np.linalg.eigh(xc.T @ xc)  # ascending
    rank = np.linalg.matrix_rank(xc)  # the squared spectrum cannot resolve tiny directions
    return vec[:, -rank:] / np.sqrt(lam[-rank:])


def canonical(x: np.ndarray, y: np.ndarray):
    """Canonical correlations (descending), X's canonical coefficients (d x k), ranks."""
    wx, wy = _whitener(x), _whitener(y)
    xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
    a, rho, _ = np.linalg.svd(wx.T @ xc.T @ yc @ wy, full_matrices=False)
    k = min(wx.shape[1], wy.shape[1])
    return np.clip(rho[:k], 0, 1), (wx @ a)[:, :k], wx.shape[1], wy.shape[1]


def cca(x: np.ndarray, y: np.ndarray, variant: str) -> float:
    rho, _, rx, ry = canonical(x, y)
    return {"mean": rho.sum() / min(rx, ry), "r2": (rho**2).sum() / min(rx, ry),
            "yanai": (rho**2).sum() / np.sqrt(rx * ry), "pillai": (rho**2).sum()}[variant]


def svcca(x: np.ndarray, y: np.ndarray, variance: float | None = 0.99,
          dims: int | None = None) -> float:
    """Raghu et al. 2017: SVD each side to the directions keeping `variance` of the variance
    (or `dims` of them), then the mean canonical correlation."""
    def reduce(z):
        zc = z - z.mean(axis=0)
        u, s, _ = np.linalg.svd(zc, full_matrices=False)
        keep = dims or int(np.searchsorted(np.cumsum(s**2) / (s**2).sum(), variance) + 1)
        return u[:, :keep] * s[:keep]
    return cca(reduce(x), reduce(y), "mean")


def pwcca(x: np.ndarray, y: np.ndarray) -> float:
    """Morcos et al. 2018: weights alpha_i = sum_j |<h_i, x_j>|, h_i = X_c w_i the canonical
    variates of X (coefficients w_i), x_j the centred columns of X; sum alpha rho / sum alpha."""
    rho, w, _, _ = canonical(x, y)
    xc = x - x.mean(axis=0)
    h = xc @ w
    alpha = np.abs(h.T @ xc).sum(axis=1)
    return float((alpha * rho).sum() / alpha.sum())


def pair_reference(features: dict[str, np.ndarray], fn, symmetric: bool = True) -> np.ndarray:
    """m x m matrix of fn(x_a, x_b) over float64 features (row a, column b)."""
    xs = [np.asarray(f, dtype=np.float64) for f in features.values()]
    mat = np.empty((len(xs), len(xs)))
    for i, x in enumerate(xs):
        for j, y in enumerate(xs):
            if symmetric and j < i:
                mat[i, j] = mat[j, i]
            else:
                mat[i, j] = fn(x, y)
    return mat


def shape_cosine(x: np.ndarray, y: np.ndarray, alpha: float) -> float:
    """Williams et al. 2021 (netrep's LinearMetric, read): centre, partially whiten
    X (alpha I + (1 - alpha) (X^T X)^{-1/2}) on the range of X, then the cosine left after the
    best orthogonal alignment (scipy's orthogonal_procrustes), not a nuclear norm."""
    from scipy.linalg import orthogonal_procrustes

    def whiten(z):
        zc = z - z.mean(axis=0)
        lam, vec = np.linalg.eigh(zc.T @ zc)
        rank = np.linalg.matrix_rank(zc)
        lam, vec = lam[-rank:], vec[:, -rank:]
        return zc @ vec @ np.diag(alpha + (1 - alpha) / np.sqrt(lam)) @ vec.T

    xw, yw = whiten(x), whiten(y)
    width = max(xw.shape[1], yw.shape[1])  # zero-padded to a common width (as netrep does)
    xw, yw = (np.pad(z, ((0, 0), (0, width - z.shape[1]))) for z in (xw, yw))
    rot, _ = orthogonal_procrustes(xw, yw)
    return float(np.sum((xw @ rot) * yw) / (np.linalg.norm(xw) * np.linalg.norm(yw)))


def bures_similarity(x: np.ndarray, y: np.ndarray) -> float:
    """Normalised Bures similarity of the centred linear kernels (n x n):
    tr (K^1/2 L K^1/2)^1/2 / sqrt(tr K tr L), through scipy's sqrtm."""
    from scipy.linalg import sqrtm

    xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
    k, l = xc @ xc.T, yc @ yc.T  # noqa: E741
    root = np.real(sqrtm(k))
    fidelity = np.trace(np.real(sqrtm(root @ l @ root)))
    return float(fidelity / np.sqrt(np.trace(k) * np.trace(l)))


def regression_r2(x: np.ndarray, y: np.ndarray) -> float:
    """R^2 of least squares y ~ [1, x] (numpy lstsq), pooled over y's columns."""
    design = np.hstack([np.ones((len(x), 1)), x])
    coef = np.linalg.lstsq(design, y, rcond=None)[0]
    residual = y - design @ coef
    yc = y - y.mean(axis=0)
    return float(1.0 - (residual**2).sum() / (yc**2).sum())


def distance_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Szekely et al. 2007: dCov^2 = mean(A B) of the double-centred distance matrices,
    dCor = sqrt(dCov^2(X, Y) / sqrt(dCov^2(X, X) dCov^2(Y, Y)))."""
    def centred(z):
        d = squareform(pdist(z))
        return d - d.mean(axis=0) - d.mean(axis=1)[:, None] + d.mean()
    a, b = centred(x), centred(y)
    return float(np.sqrt((a * b).mean() / np.sqrt((a * a).mean() * (b * b).mean())))


def _knn_lists(x: np.ndarray, k: int) -> list[list[int]]:
    z = x / np.linalg.norm(x, axis=1, keepdims=True)
    cos = z @ z.T
    np.fill_diagonal(cos, -np.inf)
    return [list(row) for row in np.argsort(-cos, axis=1, kind="stable")[:, :k]]


def neighbourhood(x: np.ndarray, y: np.ndarray, measure: str, k: int) -> float:
    """ReSi / platonic-rep definitions, one sample at a time with Python sets."""
    nx, ny = _knn_lists(x, k), _knn_lists(y, k)
    n, scores = len(x), []
    zx = x / np.linalg.norm(x, axis=1, keepdims=True)
    zy = y / np.linalg.norm(y, axis=1, keepdims=True)
    for i in range(n):
        a, b = nx[i], ny[i]
        common = set(a) & set(b)
        if measure == "jaccard":
            scores.append(len(common) / len(set(a) | set(b)))
        elif measure == "rank_similarity":
            total = sum(2 / ((1 + abs(a.index(j) - b.index(j))) * (a.index(j) + b.index(j) + 2))
                        for j in common)
            scores.append(total / sum(1 / t for t in range(1, len(common) + 1)) if common
                          else 0.0)
        elif measure == "second_order_cosine":
            union = sorted(set(a) | set(b))
            sx, sy = zx[union] @ zx[i], zy[union] @ zy[i]
            scores.append(sx @ sy / np.sqrt((sx @ sx) * (sy @ sy)))
        else:  # cycle_knn(x, y): i among x's neighbours of one of y's neighbours of i
            scores.append(float(any(i in nx[j] for j in b)))
    return float(np.mean(scores))


def cknna(x: np.ndarray, y: np.ndarray, k: int) -> float:
    """Huh et al. 2024 (platonic-rep's cknna, read): dense n x n masks and Song et al.'s
    unbiased HSIC (hsic_unbiased above) of the masked kernels; no 1e-6 in the denominator."""
    kx, ky = x @ x.T, y @ y.T

    def mask(kern):
        hat = kern.copy()
        np.fill_diagonal(hat, -np.inf)
        out = np.zeros_like(kern)
        np.put_along_axis(out, np.argsort(-hat, axis=1, kind="stable")[:, :k], 1.0, axis=1)
        return out

    mx, my = mask(kx), mask(ky)
    both = mx * my
    return float(hsic_unbiased(both * kx, both * ky)
                 / np.sqrt(hsic_unbiased(mx * kx, mx * kx) * hsic_unbiased(my * ky, my * ky)))
