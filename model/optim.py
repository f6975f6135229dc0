"""The one optimiser and learning-rate schedule shared by FashionVLP's trainer and the baselines.

AdamW without weight decay on norms, biases and the loss temperature; parameters under a
given name prefix learn at their own rate (the pretrained text layers slower, a newly added
residual path faster). The schedule is a linear warm-up then cosine decay to zero, as a
LambdaLR factor.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

import torch
from torch import nn


def adamw(named_parameters: Iterable[tuple[str, nn.Parameter]], lr: float, weight_decay: float,
          extra: Iterable[nn.Parameter] = (), prefix_lrs: Mapping[str, float] | None = None
          ) -> torch.optim.AdamW:
    """AdamW over the trainable ``named_parameters`` plus ``extra`` (never decayed); a
    parameter whose name starts with a key of ``prefix_lrs`` learns at that key's rate. A rate
    of 0 freezes the parameter outright (``requires_grad`` off, left out of the optimiser), so
    backward does not compute a gradient that would never be applied."""
    prefix_lrs = dict(prefix_lrs or {})
    prefixes, rates = list(prefix_lrs), [lr, *prefix_lrs.values()]
    groups: dict[tuple[int, bool], list[nn.Parameter]] = {}  # (index into rates, no decay)
    for name, param in named_parameters:
        rate = next((i + 1 for i, p in enumerate(prefixes) if name.startswith(p)), 0)
        if rates[rate] == 0:
            param.requires_grad_(False)
        if param.requires_grad:
            groups.setdefault((rate, param.ndim < 2), []).append(param)
    param_groups = [{"params": params, "lr": rates[rate],
                     "weight_decay": 0.0 if no_decay else weight_decay}
                    for (rate, no_decay), params in sorted(groups.items())]
    extra = list(extra)
    if extra:
        param_groups.append({"params": extra, "lr": lr, "weight_decay": 0.0})
    return torch.optim.AdamW(param_groups)


def warmup_cosine(total_steps: int, warmup: float) -> Callable[[int], float]:
    """LR factor: linear warm-up over a ``warmup`` share of the steps, then cosine to zero."""
    warm = max(1, int(total_steps * warmup))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total_steps - warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def warmup_cosine_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup: float
                           ) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total_steps, warmup))
