"""Reading headerless or headed numeric CSV matrices with errors that name the file, row and column."""

from pathlib import Path

import numpy as np
import pandas as pd

from cityagent.errors import HubError


def looks_like_header(tokens: list[str]) -> bool:
    """True when a first CSV row is a header: a non-number, or all distinct integer ids (road ids).

    A row of readings always holds decimals or repeats (zeros), so all-distinct integers mean ids.
    """
    tokens = [t.strip() for t in tokens]
    for tok in tokens:
        try:
            float(tok)
        except ValueError:
            return True
    ints = all(t.lstrip("-").isdigit() for t in tokens)
    return ints and len(set(tokens)) == len(tokens) > 1


def read_text_table(path: Path, header: bool | None, what: str) -> pd.DataFrame:
    """The CSV as strings (header auto-detected when ``header`` is None); empty cells stay ''."""
    try:
        with path.open(encoding="utf-8-sig") as fh:
            first = fh.readline().rstrip("\r\n").split(",")
        if header is None:
            header = looks_like_header(first)
        df = pd.read_csv(path, header=0 if header else None, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise HubError(f"{what} {path} is not a readable CSV ({e}); check the file") from e
    if df.empty:
        raise HubError(f"{what} {path} has no data rows; check the file")
    return df


def to_numbers(df: pd.DataFrame, path: Path, what: str, header_rows: int = 0) -> np.ndarray:
    """A float64 matrix of ``df`` (strings); '' becomes NaN, anything else non-numeric is an error."""
    text = pd.Series(df.to_numpy(dtype=object).reshape(-1), dtype=object).str.strip()  # [R*C], row-major
    blank = (text == "").to_numpy()
    num = pd.to_numeric(text.where(~blank, None), errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(np.isnan(num) & ~blank)
    if len(bad):
        i, j = divmod(int(bad[0]), df.shape[1])
        raise HubError(
            f"{what} {path}: row {i + 1 + header_rows}, column {j + 1} holds {text.iloc[int(bad[0])]!r}, "
            f"which is not a number; fix or remove that cell"
        )
    return num.reshape(df.shape)


def read_matrix(path: Path, what: str) -> np.ndarray:
    """A headerless numeric CSV as a float64 matrix (rows × columns)."""
    df = read_text_table(path, header=False, what=what)
    return to_numbers(df, path, what)
