"""Torch datasets over a ``Split``: windows are gathered lazily per item, so a DistributedSampler can shard them."""

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from cityagent.hub.windows import Split


class WindowDataset(Dataset):
    """Samples ``(x [T_in, N, F] raw units, y [H, N] raw units, mask [H, N] bool)`` of one split.

    Nothing is copied up front: each item (or batch of items) is gathered from the split's shared arrays.
    """

    def __init__(self, split: Split) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.__getitems__([i])[0]

    def __getitems__(self, idx: list[int]) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """One vectorised gather for a whole batch (the DataLoader calls this when it exists)."""
        x, y, mask = self.split.batch(np.asarray(idx, dtype=np.int64))  # [B, T, N, F], [B, H, N], [B, H, N]
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        yt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))
        mt = torch.from_numpy(mask)
        return [(xt[k], yt[k], mt[k]) for k in range(len(idx))]


def make_loader(split: Split, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """A DataLoader in the main process (the machines have few cores; gathering is cheap)."""
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(WindowDataset(split), batch_size=batch_size, shuffle=shuffle, num_workers=0, generator=gen)


def torch_predictor(model: torch.nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    """``x [B, T, N, F] -> model(x)`` as numpy, in eval mode without gradients."""
    model.eval()

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()

    return predict


def predict_split(predict: Callable[[np.ndarray], np.ndarray], split: Split, batch_size: int = 256) -> np.ndarray:
    """Real-unit predictions ``[S, H, N]`` (or ``[S, H, N, Q]``) over every window of ``split``, in order.

    Args:
        predict: raw-unit ``x [B, T, N, F]`` → real-unit forecast (see ``torch_predictor``).
        split: the windows.
        batch_size: windows per call.
    """
    if not len(split):
        raise ValueError("the split has no windows to predict")
    out = [
        predict(split.batch(np.arange(s, min(s + batch_size, len(split))))[0]) for s in range(0, len(split), batch_size)
    ]
    return np.concatenate(out, axis=0)
