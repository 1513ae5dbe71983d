"""Durations and steps as people write them in configs and manifests, read alike under pandas 3 and pandas 4.

pandas 3 deprecates the unit spellings ``d``, ``w`` and ``H`` (``'35d'`` warns, and fails under pandas 4) and has
already removed ``T`` and ``S`` as minute and second. Configs written for any pandas keep working: every duration a
person writes passes through :func:`normalize` before pandas reads it.
"""

import re

import pandas as pd
from pandas.tseries.frequencies import to_offset
from pandas.tseries.offsets import BaseOffset

# an old unit spelling right after a number ('35d', '1.5 H', '2d12h'), not a word ('1 day', '2 days', '1 hour')
_OLD_UNIT = re.compile(r"(?<=[\d.\s])(d|w|H|T|S)(?![A-Za-z])")
_NEW_UNIT = {"d": "D", "w": "W", "H": "h", "T": "min", "S": "s"}


def normalize(text: str) -> str:
    """``text`` with its deprecated or removed pandas unit spellings replaced: ``35d`` → ``35D``, ``1H`` → ``1h``,
    ``15T`` → ``15min``; anything else (ISO 8601 ``P1DT2H`` included) is returned as it is."""
    text = text.strip()
    if text[:1] in ("P", "-") and text.lstrip("-")[:1] == "P":  # ISO 8601: its letters are the standard's own
        return text
    return _OLD_UNIT.sub(lambda m: _NEW_UNIT[m.group(1)], text)


def duration(value: object, key: str = "duration") -> pd.Timedelta:
    """``value`` (``'35d'``, ``'5min'``, a timedelta) as a Timedelta.

    Raises:
        ValueError: not a duration; the message names ``key`` and shows the spellings that work.
    """
    try:
        out = pd.Timedelta(normalize(value) if isinstance(value, str) else value)
    except (ValueError, TypeError, OverflowError) as e:
        raise ValueError(f"{key} {value!r} is not a duration; use e.g. '30s', '5min', '12h' or '1d'") from e
    if pd.isna(out):
        raise ValueError(f"{key} {value!r} is not a duration; use e.g. '30s', '5min', '12h' or '1d'")
    return out


def step_offset(step: str) -> BaseOffset:
    """A reading interval (``'5min'``, ``'1h'``, ``'1d'``) as a pandas offset; ValueError when it is none."""
    return to_offset(normalize(step) if isinstance(step, str) else step)


def step_delta(step: str) -> pd.Timedelta:
    """A reading interval as a Timedelta (``'15min'`` → 15 minutes); ValueError when it is none."""
    return pd.Timedelta(step_offset(step))
