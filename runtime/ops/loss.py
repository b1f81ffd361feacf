"""Loss ops: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (inference forms)."""
from __future__ import annotations

import torch

from tritonnx.errors import InvalidArgument
from tritonnx.runtime.registry import register


@register("NegativeLogLikelihoodLoss", since=12)
def NegativeLogLikelihoodLoss(input, target, weight=None, *, ignore_index=None, reduction="mean"):
    """ONNX NegativeLogLikelihoodLoss: -input[n, target[n, ...], ...] * weight[target], reduced
    by none, sum or mean (weighted by the weights of the non-ignored targets)."""
    if reduction not in ("none", "sum", "mean"):
        raise InvalidArgument(f"NegativeLogLikelihoodLoss: reduction={reduction!r}, expected none, sum or mean")
    c = input.shape[1]
    t = target.to(device=input.device, dtype=torch.int64)
    keep = torch.ones_like(t, dtype=torch.bool) if ignore_index is None else t != ignore_index
    t_safe = torch.where(keep, t, torch.zeros_like(t))
    w = torch.ones(c, dtype=input.dtype, device=input.device) if weight is None else weight.to(input.dtype)
    w_t = w[t_safe] * keep.to(input.dtype)
    loss = -input.gather(1, t_safe.unsqueeze(1)).squeeze(1) * w_t
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / w_t.sum()


@register("SoftmaxCrossEntropyLoss", since=12)
def SoftmaxCrossEntropyLoss(scores, labels, weights=None, *, ignore_index=None, reduction="mean", num_outputs=1):
    """ONNX SoftmaxCrossEntropyLoss: NegativeLogLikelihoodLoss of log_softmax(scores, 1);
    returns (loss, log_prob)."""
    cdt = torch.float32 if scores.dtype in (torch.float16, torch.bfloat16) else scores.dtype
    log_prob = torch.log_softmax(scores.to(cdt), dim=1)
    w = None if weights is None else weights.to(cdt)
    loss = NegativeLogLikelihoodLoss(log_prob, labels, w, ignore_index=ignore_index, reduction=reduction)
    return loss.to(scores.dtype), log_prob.to(scores.dtype)
