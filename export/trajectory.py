"""The float model's reference trajectory over a stream, the yardstick of calibration and verification.

`float_trajectory` steps the PyTorch model frame by frame from a zero state, as a device would; `split_state`
names a flattened torch state the way the exported models name their state inputs (`train.models.state_name`).
The export's calibration set (`export.pipeline`) and its fidelity check (`export.verify`) both use them.
"""

from __future__ import annotations

import numpy as np
import torch

from edge.frontend import features_to_float
from train.models import ModelConfig, RecurrentKWS, state_name


@torch.no_grad()
def float_trajectory(model: RecurrentKWS, feats: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """PyTorch `step` over a stream from a zero state: (probs [T,C], states before each step [T,...])."""
    state = model.initial_state(1)
    probs, states = [], []
    x = torch.from_numpy(features_to_float(feats))
    for t in range(len(x)):
        states.append(np.concatenate([s[:, 0, :].numpy().reshape(-1) for s in state]))
        logits, state = model.step(x[t : t + 1], state)
        probs.append(torch.softmax(logits, -1)[0].numpy())
    return np.asarray(probs), states


def split_state(flat: np.ndarray, config: ModelConfig) -> dict[str, np.ndarray]:
    """Flattened (kind-major, then layer) torch state -> {state_<k><l>: [1, state width]}."""
    kinds, layers, width = config.cell.state_names, config.state_layers, config.state_width
    per_kind = flat.reshape(len(kinds), layers, width)
    return {state_name(k, l): per_kind[i, l].reshape(1, width).astype(np.float32) for i, k in enumerate(kinds) for l in range(layers)}
