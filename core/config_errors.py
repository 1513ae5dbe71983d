"""Did-you-mean for one-line errors: the nearest valid dotted key of a pydantic config tree, or the nearest of a set
of names (models, datasets, tables, timezones)."""

import difflib
from collections.abc import Iterable

from pydantic import BaseModel, ValidationError


def valid_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted key of ``model``, sections and their fields (``["train", "train.lr", ...]``)."""
    paths = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        paths.append(path)
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            paths += valid_paths(ann, path + ".")
    return paths


def key_hint(path: str, model: type[BaseModel]) -> str:
    """``"did you mean 'a.b'?"`` for the valid key nearest ``path``, else the valid keys of its section."""
    paths = valid_paths(model)
    near = difflib.get_close_matches(path, paths, n=1, cutoff=0.5)
    if near:
        return f"did you mean {near[0]!r}?"
    parent = path.rpartition(".")[0]
    siblings = [p for p in paths if p.rpartition(".")[0] == parent]
    return f"valid keys{f' of {parent}' if parent else ''}: {', '.join(siblings)}"


def explain(e: ValidationError, model: type[BaseModel]) -> str:
    """``"key: what is wrong; what to do"`` for the first error pydantic found, a nearest key for an unknown one."""
    err = e.errors()[0]
    where = ".".join(str(part) for part in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"{where}: Extra inputs are not permitted; {key_hint(where, model)}"
    why = err["msg"].removeprefix("Value error, ")  # pydantic's wrapping of our validators' own sentences
    return f"{where}: {why}; fix that key"


def nearest(name: str, choices: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The valid name a mistyped ``name`` most likely meant: a case-insensitive match first (``STID`` → ``stid``),
    then the closest spelling (``trafic`` → ``traffic``, ``sz_taxi`` → ``sz-taxi``); None when nothing is close."""
    options = list(choices)
    folded = {c.lower(): c for c in options}
    if name.lower() in folded:
        return folded[name.lower()]
    canon = {c.lower().replace("_", "-"): c for c in options}  # sz_taxi / SZ-Taxi for sz-taxi
    if name.lower().replace("_", "-") in canon:
        return canon[name.lower().replace("_", "-")]
    near = difflib.get_close_matches(name.lower(), list(folded), n=1, cutoff=cutoff)
    return folded[near[0]] if near else None
