"""EAST-Net / JONAS taxi and bike demand/supply grids, New York City and Washington DC, 100 days from 2015-10-24.

Reference: Wang et al., "Event-Aware Multimodal Mobility Nowcasting", AAAI 2022
(github.com/underdoc-wang/EAST-Net).

Clock: every day has the same number of slots (NYC 48, DC 24), and the slots of 2015-11-01 01:00–02:00, the
hour repeated when daylight saving ended, hold about twice the usual trips: the files count trips by local
wall-clock slot. The slots are therefore stored in the fixed offset ``Etc/GMT+5`` (UTC−5, US Eastern standard
time), which keeps them regular and unique; before 2015-11-01 02:00 the real instant is one hour earlier, and
the repeated hour's two passes share one slot. ``extra['local_timezone']`` names the city's zone.
"""

import re
from pathlib import Path

import numpy as np

from cityagent.errors import ConfigError, HubError
from cityagent.hub.hub import Hub, HubMeta, per_step
from cityagent.hub.importers.archives import READ_ERRORS, require_file, unreadable, wrong_importer
from cityagent.hub.importers.frames import dense_to_long, regular_ts
from cityagent.hub.importers.grids import cell_id, grid_cell_ids, grid_edges, grid_zones

FILE_NAME = re.compile(r"JONAS-(?P<city>[A-Za-z]+)-(?P<rows>\d+)x(?P<cols>\d+)-(?P<start>\d{8})-(?P<end>\d{8})")
TIMEZONE = "Etc/GMT+5"  # POSIX sign: UTC-5
MODES = ("taxi", "bike")


def _name_facts(path: Path, start: str | None) -> tuple[str, str, int]:
    """City, first day and number of days, from a ``JONAS-<CITY>-<R>x<C>-<YYYYMMDD>-<YYYYMMDD>`` name."""
    m = FILE_NAME.search(path.name)
    if m is None:
        other = wrong_importer(path, "jonas")  # another dataset's file, not a renamed JONAS one
        raise ConfigError(
            other or f"{path.name} is not named JONAS-<CITY>-<R>x<C>-<start>-<end>.npz; keep the original name"
        )
    first = np.datetime64(f"{m['start'][:4]}-{m['start'][4:6]}-{m['start'][6:]}")
    last = np.datetime64(f"{m['end'][:4]}-{m['end'][4:6]}-{m['end'][6:]}")
    days = int((last - first).astype(int)) + 1  # the end day is inclusive
    return m["city"].upper(), start or str(first), days


def _holidays(meta: np.ndarray, per_day: int, days: list) -> list[str]:
    """Weekdays flagged in the last meta_onehot column (weekend-or-holiday flag, inferred)."""
    flag = meta[::per_day, -1] == 1  # [days]
    return [d.strftime("%Y-%m-%d") for d, f in zip(days, flag, strict=True) if f and d.day_of_week < 5]


def import_jonas(path: str | Path, mode: str = "taxi", name: str | None = None, start: str | None = None) -> Hub:
    """A demand hub from an EAST-Net ``JONAS-*.npz`` grid.

    Args:
        path: ``JONAS-NYC-16x8-20151024-20160131.npz`` or the DC file (the name gives city, start, days).
        mode: ``taxi`` or ``bike``; count = channel 0 (pick-ups/starts), supply = channel 1 (drop-offs/ends).
        name: hub name (default the known dataset's: ``jonas-<city>`` for taxi, ``jonas-<city>-bike``).
        start: first slot (wall clock) when the name is not the original; default from the name.
    """
    if mode not in MODES:
        raise ConfigError(f"mode={mode!r} is not a JONAS mode; use one of {', '.join(MODES)}")
    path = require_file(path, "JONAS npz")
    city, first, days = _name_facts(path, start)
    try:
        with np.load(path, allow_pickle=False) as z:
            if mode not in z.files:
                raise HubError(f"{path} has no {mode!r} array (it has {z.files}); is it a JONAS file?")
            x = z[mode]  # [T, R, C, 2]
            meta = z["meta_onehot"] if "meta_onehot" in z.files else None
            mask = z["mask"] if "mask" in z.files else np.zeros((0, 2), dtype=np.int64)
    except (*READ_ERRORS, ValueError) as e:
        raise HubError(wrong_importer(path, "jonas") or unreadable(path, "a readable .npz", e)) from e
    if x.ndim != 4 or x.shape[3] != 2:
        raise HubError(f"{path}: {mode} has shape {x.shape}; expected [T, rows, cols, 2]")
    t, rows, cols, _ = x.shape
    if t % days or 1440 % (t // days):
        raise HubError(f"{path}: {t} slots do not split into {days} days of whole-minute slots")
    per_day = t // days
    step = "1h" if per_day == 24 else f"{1440 // per_day}min"
    ts = regular_ts(first, t, step, TIMEZONE)
    ids = grid_cell_ids(rows, cols)
    cells = x.reshape(t, rows * cols, 2)  # [T, R*C, 2], row-major cells
    extra = {
        "importer": "jonas",
        "files": {"data": path.name},
        "mode": mode,
        "city": city,
        "grid": [rows, cols],
        "steps": t,
        "local_timezone": "America/New_York",
        "clock": "local wall-clock slots in fixed offset UTC-5; 2015-11-01 01:00-02:00 holds the repeated hour twice",
        "eval_excluded": [cell_id(int(r), int(c)) for r, c in mask.reshape(-1, 2)],
        "demand": f"count = {mode} pick-ups/starts (channel 0), supply = drop-offs/ends (channel 1)",
        "units": {
            "count": f"{mode} {'pick-ups' if mode == 'taxi' else 'starts'} per {per_step(step)}",
            "supply": f"{mode} {'drop-offs' if mode == 'taxi' else 'ends'} per {per_step(step)}",
        },
        "edges_note": "neighbor edges are the grid's 4-neighbours (derived, not in the file)",
    }
    if meta is not None:
        extra["holidays"] = _holidays(meta, per_day, list(ts[::per_day]))
        extra["holidays_note"] = "weekdays set in meta_onehot's last column (weekend/holiday flag, inferred)"
    tables = {
        "demand": dense_to_long(ts, ids, "zone_id", {"count": cells[..., 0], "supply": cells[..., 1]}),
        "zones": grid_zones(rows, cols),
        "edges": grid_edges(rows, cols),
    }
    name = name or f"jonas-{city.lower()}" + ("" if mode == "taxi" else f"-{mode}")  # as configs name it
    return Hub(tables, HubMeta(name=name, step=step, timezone=TIMEZONE, source=f"jonas:{path}", extra=extra))
