"""Adjacency from edges, coordinates and grids; normalisations keep their defining properties."""

import numpy as np
import pandas as pd
import pytest

from cityagent.errors import ConfigError, HubError
from cityagent.hub.graph import (
    adjacency_from_coords,
    adjacency_from_edges,
    grid_adjacency,
    haversine_km,
    normalized,
)

EDGES = pd.DataFrame(
    {
        "src": ["a", "b", "a", "c"],
        "dst": ["b", "c", "c", "a"],
        "weight": [1.0, 2.0, 3.0, 4.0],
        "kind": ["road", "road", "road", "line"],
    }
)


def test_edges_directed_weighted_by_kind():
    a = adjacency_from_edges(EDGES, ["a", "b", "c"], kind="road")
    expected = np.zeros((3, 3), np.float32)
    expected[0, 1], expected[1, 2], expected[0, 2] = 1, 2, 3
    np.testing.assert_array_equal(a, expected)
    s = adjacency_from_edges(EDGES, ["a", "b", "c"], kind="road", symmetric=True)
    np.testing.assert_array_equal(s, s.T)
    assert s[1, 0] == 1 and s[2, 1] == 2
    reordered = adjacency_from_edges(EDGES, ["c", "b", "a"], kind="road")
    assert reordered[2, 1] == 1 and reordered[1, 0] == 2  # rows follow the node order given


def test_edge_errors_are_explicit():
    with pytest.raises(ConfigError, match="mix kinds"):
        adjacency_from_edges(EDGES, ["a", "b", "c"])
    with pytest.raises(HubError, match="no kind 'rail'"):
        adjacency_from_edges(EDGES, ["a", "b", "c"], kind="rail")
    with pytest.raises(HubError, match="outside the node list"):
        adjacency_from_edges(EDGES, ["a", "b"], kind="road")
    dropped = adjacency_from_edges(EDGES, ["a", "b"], kind="road", unknown="drop")
    np.testing.assert_array_equal(dropped, [[0, 1], [0, 0]])


def test_coords_kernel_is_symmetric_sparse_and_bounded():
    lat = np.array([22.50, 22.51, 22.52, 23.50])
    lon = np.array([114.00, 114.00, 114.01, 114.00])
    w = adjacency_from_coords(lat, lon, sigma_km=2.0)
    np.testing.assert_array_equal(w, w.T)
    assert (np.diag(w) == 0).all() and (w >= 0).all() and (w <= 1).all()
    assert w[0, 3] == 0 and w[0, 1] > w[0, 2] > 0  # far node cut by the threshold, nearer is heavier
    assert haversine_km(np.array([0.0, 1.0]), np.array([0.0, 0.0]))[0, 1] == pytest.approx(111.19, abs=0.01)
    with pytest.raises(HubError, match="lat/lon"):
        adjacency_from_coords(np.array([1.0, np.nan]), np.array([0.0, 0.0]))


def test_grid_neighbours():
    g = grid_adjacency(3, 4)
    np.testing.assert_array_equal(g, g.T)
    deg = g.sum(1).reshape(3, 4)
    assert deg[0, 0] == 2 and deg[0, 1] == 3 and deg[1, 1] == 4
    assert g[0, 1] == 1 and g[0, 4] == 1 and g[3, 4] == 0  # row-major: cell 3 ends row 0, cell 4 starts row 1
    assert grid_adjacency(3, 4, diagonal=True)[1 * 4 + 1].sum() == 8


def test_normalisations():
    a = grid_adjacency(3, 3)
    sym = normalized(a, "sym")
    np.testing.assert_allclose(sym, sym.T, atol=1e-7)
    assert np.abs(np.linalg.eigvalsh(sym.astype(np.float64))).max() <= 1 + 1e-6
    rw = normalized(a, "rw")
    np.testing.assert_allclose(rw.sum(1), 1, atol=1e-6)
    iso = np.zeros((2, 2))
    assert (normalized(iso, "rw", self_loops=False) == 0).all()
    np.testing.assert_allclose(normalized(iso, "sym"), np.eye(2))
    with pytest.raises(ConfigError):
        normalized(a, "lap")
