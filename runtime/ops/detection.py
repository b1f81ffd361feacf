"""Detection ops: NonMaxSuppression and RoiAlign (data-dependent; computed on the host for
NMS, per region of interest for RoiAlign)."""
from __future__ import annotations

import math

import torch

from tritonnx.errors import InvalidArgument
from tritonnx.runtime.ops._common import check_rank, scalar
from tritonnx.runtime.registry import register


def _corners(boxes: torch.Tensor, center_point_box: int) -> torch.Tensor:
    """(..., 4) boxes as (y1, x1, y2, x2) with y1 <= y2, x1 <= x2."""
    if center_point_box:
        xc, yc, w, h = boxes.unbind(-1)
        return torch.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], dim=-1)
    y1, x1, y2, x2 = boxes.unbind(-1)
    return torch.stack([torch.minimum(y1, y2), torch.minimum(x1, x2), torch.maximum(y1, y2), torch.maximum(x1, x2)], -1)


def _iou(box: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    ih = (torch.minimum(box[2], others[:, 2]) - torch.maximum(box[0], others[:, 0])).clamp(min=0)
    iw = (torch.minimum(box[3], others[:, 3]) - torch.maximum(box[1], others[:, 1])).clamp(min=0)
    inter = ih * iw
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area + areas - inter
    return torch.where(union > 0, inter / union, torch.zeros_like(inter))


@register("NonMaxSuppression", since=10, host_inputs=(2, 3, 4), syncs=(0, 1))
def NonMaxSuppression(boxes, scores, max_output_boxes_per_class=None, iou_threshold=None, score_threshold=None, *,
                      center_point_box=0):
    """ONNX NonMaxSuppression: per batch and class, greedily keep the highest-scoring boxes whose
    IoU with every kept box is <= iou_threshold; int64 (batch, class, box) rows."""
    check_rank("NonMaxSuppression", "boxes", boxes, 3)
    check_rank("NonMaxSuppression", "scores", scores, 3)
    limit = 0 if max_output_boxes_per_class is None else int(scalar(max_output_boxes_per_class))
    iou_t = 0.0 if iou_threshold is None else float(scalar(iou_threshold))
    score_t = None if score_threshold is None else float(scalar(score_threshold))
    if not 0.0 <= iou_t <= 1.0:
        raise InvalidArgument(f"NonMaxSuppression: iou_threshold={iou_t}, expected a value in [0, 1]")
    b_cpu = _corners(boxes.detach().to("cpu", torch.float64), center_point_box)
    s_cpu = scores.detach().to("cpu", torch.float64)
    rows: list[tuple[int, int, int]] = []
    for b in range(s_cpu.shape[0]):
        for c in range(s_cpu.shape[1]):
            sc = s_cpu[b, c]
            cand = torch.arange(sc.shape[0]) if score_t is None else torch.nonzero(sc > score_t).reshape(-1)
            order = cand[torch.sort(sc[cand], descending=True, stable=True).indices]
            kept: list[int] = []
            while order.numel() and len(kept) < limit:
                i = int(order[0])
                kept.append(i)
                rest = order[1:]
                order = rest[_iou(b_cpu[b, i], b_cpu[b, rest]) <= iou_t]
            rows += [(b, c, i) for i in kept]
    out = torch.tensor(rows, dtype=torch.int64).reshape(-1, 3)
    return out.to(boxes.device)


def _bilinear_taps(coord: torch.Tensor, size: int):
    """Indices and weights of the two taps of each coordinate, RoiAlign's border rules
    (outside [-1, size]: no contribution)."""
    valid = (coord >= -1.0) & (coord <= size)
    c = coord.clamp(min=0)
    low = c.floor().long()
    at_end = low >= size - 1
    low = torch.where(at_end, torch.full_like(low, size - 1), low)
    high = torch.where(at_end, low, low + 1)
    c = torch.where(at_end, low.to(c.dtype), c)
    frac = c - low
    return low, high, 1 - frac, frac, valid


@register("RoiAlign", since=10, syncs=(1, 2))
def RoiAlign(X, rois, batch_indices, *, coordinate_transformation_mode="half_pixel", mode="avg",
             output_height=1, output_width=1, sampling_ratio=0, spatial_scale=1.0):
    """ONNX RoiAlign: (num_rois, C, output_height, output_width) bilinear samples of each region,
    averaged (or maxed) per bin; coordinate mode half_pixel (opset 16 default) or output_half_pixel."""
    if mode not in ("avg", "max"):
        raise InvalidArgument(f"RoiAlign: mode={mode!r}, expected avg or max")
    if coordinate_transformation_mode not in ("half_pixel", "output_half_pixel"):
        raise InvalidArgument(
            f"RoiAlign: coordinate_transformation_mode={coordinate_transformation_mode!r}, expected half_pixel or output_half_pixel"
        )
    check_rank("RoiAlign", "X", X, 4)
    _, c, h, w = X.shape
    half = coordinate_transformation_mode == "half_pixel"
    cdt = torch.float64 if X.dtype == torch.float64 else torch.float32
    x = X.to(cdt)
    outs = []
    for r in range(rois.shape[0]):
        x1, y1, x2, y2 = (float(v) * spatial_scale - (0.5 if half else 0.0) for v in rois[r].tolist())
        rw, rh = x2 - x1, y2 - y1
        if not half:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bh, bw = rh / output_height, rw / output_width
        gh = sampling_ratio if sampling_ratio > 0 else max(math.ceil(rh / output_height), 1)
        gw = sampling_ratio if sampling_ratio > 0 else max(math.ceil(rw / output_width), 1)
        ys = y1 + (torch.arange(output_height, dtype=cdt)[:, None] * bh
                   + (torch.arange(gh, dtype=cdt)[None, :] + 0.5) * bh / gh).reshape(-1)
        xs = x1 + (torch.arange(output_width, dtype=cdt)[:, None] * bw
                   + (torch.arange(gw, dtype=cdt)[None, :] + 0.5) * bw / gw).reshape(-1)
        yl, yh, wyl, wyh, vy = _bilinear_taps(ys, h)
        xl, xh, wxl, wxh, vx = _bilinear_taps(xs, w)
        img = x[int(batch_indices[r])].to(x.device)
        dev = img.device

        def tap(yi, xi, wy, wx):
            vals = img[:, yi.to(dev)][:, :, xi.to(dev)]  # (C, Y, X)
            wt = (wy[:, None] * wx[None, :] * (vy[:, None] & vx[None, :])).to(device=dev, dtype=cdt)
            return vals * wt

        terms = [tap(yl, xl, wyl, wxl), tap(yl, xh, wyl, wxh), tap(yh, xl, wyh, wxl), tap(yh, xh, wyh, wxh)]
        if mode == "avg":
            s = sum(terms).reshape(c, output_height, gh, output_width, gw)
            outs.append(s.mean(dim=(2, 4)))
        else:
            s = torch.stack(terms).amax(dim=0).reshape(c, output_height, gh, output_width, gw)
            outs.append(s.amax(dim=(2, 4)))
    if not outs:
        return X.new_zeros((0, c, output_height, output_width))
    return torch.stack(outs).to(X.dtype)
