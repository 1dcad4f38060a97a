"""The workshop's CNN as EI builds it for 96x96 greyscale input, trained for a fixed number of steps.

Conv 32 3x3 + max-pool, Conv 16 3x3 + max-pool, flatten, dropout 0.25, dense to the classes; Adam 5e-4,
batch 32, cross-entropy. Two choices make it fit the bench's time budget without changing what it computes
in a way that matters to a comparison between datasets: ReLU after the pooling (max-pool and ReLU commute,
and the ReLU then touches a quarter of the pixels) and bfloat16 autocast on the CPU (about 2x faster here).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

BATCH = 32


class Standardize(nn.Module):
    """Each image to zero mean and unit variance: NOT in EI's model; only for the bench's what-if question
    (is the default's shortfall the recipe's, or this model's?)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean) / (x.std(dim=(1, 2, 3), keepdim=True) + 1e-3)


def build(classes: int, size: int = 96, standardize: bool = False) -> nn.Sequential:
    """The model; initialised from torch's global generator (seed it first for a paired comparison)."""
    flat = 16 * (((size - 2) // 2 - 2) // 2) ** 2
    return nn.Sequential(
        *([Standardize()] if standardize else []),
        nn.Conv2d(1, 32, 3),
        nn.MaxPool2d(2, 2),
        nn.ReLU(),
        nn.Conv2d(32, 16, 3),
        nn.MaxPool2d(2, 2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Dropout(0.25),
        nn.Linear(flat, classes),
    ).to(memory_format=torch.channels_last)


def _tensor(images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0).unsqueeze(1)
    return x.contiguous(memory_format=torch.channels_last)


def train(
    images: np.ndarray, labels: np.ndarray, classes: int, *, seed: int, steps: int, standardize: bool = False
) -> nn.Module:
    """Train on uint8 greyscale ``images`` (N, H, W) for exactly ``steps`` batches (epochs reshuffled).

    The same ``seed`` gives the same initialisation and the same batch-order generator whatever the data, so
    two datasets are compared on equal terms.
    """
    torch.manual_seed(seed)
    model = build(classes, images.shape[1], standardize)
    x, y = _tensor(images), torch.from_numpy(labels).long()
    optimiser = torch.optim.Adam(model.parameters(), lr=5e-4)
    order = torch.Generator().manual_seed(seed)
    batch = min(BATCH, len(x))
    perm, pos = torch.randperm(len(x), generator=order), 0
    model.train()
    for _ in range(steps):
        if pos + batch > len(x):
            perm, pos = torch.randperm(len(x), generator=order), 0
        index = perm[pos : pos + batch]
        pos += batch
        optimiser.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(x[index])
        loss = nn.functional.cross_entropy(logits.float(), y[index])
        loss.backward()
        optimiser.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy on uint8 greyscale ``images``."""
    correct = 0
    for start in range(0, len(images), 512):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(_tensor(images[start : start + 512]))
        correct += int((logits.float().argmax(1).numpy() == labels[start : start + 512]).sum())
    return correct / len(images)
