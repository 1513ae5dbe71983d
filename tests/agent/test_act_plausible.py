"""A forecast far outside what its target can be (a corrupted model) writes no decisions: they are never rewritten."""

from types import SimpleNamespace

import numpy as np
import pytest

from cityagent.agent.act import check_plausible
from cityagent.agent.think import Forecast
from cityagent.errors import CityAgentError


def window(target: str) -> SimpleNamespace:
    return SimpleNamespace(facts=SimpleNamespace(target=target))


def test_an_absurd_forecast_is_refused_and_an_ordinary_error_passes():
    speeds = np.full((12, 4), 50.0)
    check_plausible(Forecast("traffic-x", "3", speeds), window("speed"))
    check_plausible(Forecast("demand-x", "1", np.full((1, 4), -0.2)), window("count"))  # a forecast error, not broken
    speeds[5, 2] = 1.1e37  # what the review's bit-flipped model answered
    with pytest.raises(
        CityAgentError, match=r"model traffic-x v3 forecast speed 1.1e\+37, far outside its valid range 0 to 300"
    ):
        check_plausible(Forecast("traffic-x", "3", speeds), window("speed"))
    check_plausible(Forecast("m", "1", np.full((1, 1), 1e9)), window("unknown_target"))  # no known range: not judged
