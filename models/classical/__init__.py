"""Classical (scikit-learn) baselines with ``fit(x [S,T,N,F], y [S,H,N])`` / ``predict(x) -> [S,H,N]``."""

from cityagent.models.classical import gbrt

__all__ = ["gbrt"]
