"""Adjacency matrices from edge lists, coordinates or grids, and their normalisations."""

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from cityagent.errors import ConfigError, HubError

log = logging.getLogger(__name__)
EARTH_RADIUS_KM = 6371.0088


def adjacency_from_edges(
    edges_df: pd.DataFrame,
    nodes: Sequence[str],
    kind: str | None = None,
    symmetric: bool = False,
    unknown: str = "raise",
) -> np.ndarray:
    """``[N, N]`` float32 with ``A[i, j]`` = weight of edge ``nodes[i] → nodes[j]`` (1 without a weight column).

    Args:
        edges_df: the hub's ``edges`` table (``src``, ``dst``, optional ``weight`` and ``kind``).
        nodes: node ids giving the row/column order.
        kind: use only edges of this kind; required when the table mixes kinds.
        symmetric: make the graph undirected (``max(A, A.T)``).
        unknown: ``'raise'`` on edges touching ids outside ``nodes``, or ``'drop'`` them (logged).
    """
    df = edges_df
    kinds = sorted(df["kind"].dropna().astype(str).unique()) if "kind" in df else []
    if kind is not None:
        if kind not in kinds:
            raise HubError(f"edges have no kind {kind!r}; kinds present: {kinds or 'none'}")
        df = df[df["kind"].astype(str) == kind]
    elif len(kinds) > 1:
        raise ConfigError(f"edges mix kinds {kinds}; pass kind= to choose one graph")
    index = pd.Index([str(n) for n in nodes])
    src, dst = index.get_indexer(df["src"].astype(str)), index.get_indexer(df["dst"].astype(str))
    off = (src < 0) | (dst < 0)
    if off.any():
        if unknown != "drop":
            row = df.iloc[int(np.flatnonzero(off)[0])]
            raise HubError(
                f"{int(off.sum())} edge(s) touch nodes outside the node list "
                f"(first {row['src']!r} → {row['dst']!r}); add the nodes or pass unknown='drop'"
            )
        log.info("dropped %d of %d edges that touch nodes outside the node list", int(off.sum()), len(off))
    w = df["weight"].to_numpy(dtype=np.float64) if "weight" in df else np.ones(len(df))
    adj = np.zeros((len(index), len(index)), dtype=np.float64)
    keep = ~off
    np.add.at(adj, (src[keep], dst[keep]), w[keep])
    if symmetric:
        adj = np.maximum(adj, adj.T)
    return adj.astype(np.float32)


def haversine_km(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """``[N, N]`` great-circle distances in km between points given in degrees."""
    p, lam = np.radians(np.asarray(lat, float)), np.radians(np.asarray(lon, float))
    dp, dl = p[:, None] - p[None, :], lam[:, None] - lam[None, :]
    h = np.sin(dp / 2) ** 2 + np.cos(p)[:, None] * np.cos(p)[None, :] * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0, 1)))


def adjacency_from_coords(
    lat: np.ndarray, lon: np.ndarray, sigma_km: float | None = None, threshold: float = 0.1
) -> np.ndarray:
    """Gaussian kernel ``exp(-(d / sigma)^2)`` of haversine distances, zeroed below ``threshold`` and on the diagonal.

    Args:
        lat, lon: node coordinates in degrees, ``[N]``.
        sigma_km: kernel width in km (default: the std of all pairwise distances, as DCRNN does).
        threshold: weights below it become 0 (sparsity).
    """
    if np.isnan(np.asarray(lat, float)).any() or np.isnan(np.asarray(lon, float)).any():
        raise HubError("some nodes have no lat/lon; fill the coordinates or build the graph from edges")
    d = haversine_km(lat, lon)
    sigma = float(sigma_km) if sigma_km else float(d.std())
    w = np.exp(-((d / sigma) ** 2)) if sigma > 0 else np.ones_like(d)
    w[w < threshold] = 0.0
    np.fill_diagonal(w, 0.0)
    return w.astype(np.float32)


def grid_adjacency(rows: int, cols: int, diagonal: bool = False) -> np.ndarray:
    """``[R*C, R*C]`` 0/1 adjacency of a row-major grid: 4 neighbours, or 8 with ``diagonal``."""
    r, c = np.divmod(np.arange(rows * cols), cols)
    dr, dc = np.abs(r[:, None] - r[None, :]), np.abs(c[:, None] - c[None, :])
    near = (dr <= 1) & (dc <= 1) if diagonal else (dr + dc == 1)
    np.fill_diagonal(near, False)
    return near.astype(np.float32)


def normalized(adj: np.ndarray, kind: str = "sym", self_loops: bool = True) -> np.ndarray:
    """``D^-1/2 A D^-1/2`` (``sym``) or ``D^-1 A`` (``rw``, rows sum to 1) of ``A`` (+ I); isolated rows stay 0."""
    if kind not in ("sym", "rw"):
        raise ConfigError(f"normalisation kind {kind!r}; use 'sym' or 'rw'")
    a = np.asarray(adj, dtype=np.float64) + (np.eye(len(adj)) if self_loops else 0.0)
    deg = a.sum(axis=1)
    with np.errstate(divide="ignore"):
        inv = np.where(deg > 0, 1.0 / deg, 0.0)
    if kind == "rw":
        return (inv[:, None] * a).astype(np.float32)
    root = np.sqrt(inv)
    return (root[:, None] * a * root[None, :]).astype(np.float32)
