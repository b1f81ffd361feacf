"""The ``ai.onnx.ml`` domain: the ops of classic machine-learning models converted by skl2onnx /
onnxmltools (scikit-learn pipelines, gradient boosting).

Tensor work (Binarizer, Scaler, Normalizer, LinearClassifier/Regressor, ArrayFeatureExtractor on
numbers, Imputer) runs as torch ops on the session's device. Host work runs in numpy on the
host, as onnxruntime does it: strings (LabelEncoder, OneHotEncoder on strings, string class
labels), tree ensembles (TreeEnsemble, TreeEnsembleClassifier, TreeEnsembleRegressor: the trees
are flattened once, at session creation, by their ``prepare`` step, then every sample walks
every tree at once, one level per numpy step) and ZipMap (a list of dicts, onnxruntime's Python
form of a sequence of maps). A string tensor is a numpy object array (onnxruntime's form).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from tritonnx.errors import InvalidArgument, NotImplemented
from tritonnx.runtime import dtypes
from tritonnx.runtime.registry import register
from tritonnx.runtime.subgraph import SequenceValue

ML = "ai.onnx.ml"


def _host(x) -> np.ndarray:
    """A value as a numpy array on the host (string arrays are already numpy)."""
    if isinstance(x, torch.Tensor):
        return dtypes.to_numpy(x)
    return np.asarray(x)


def _device(array: np.ndarray, ctx) -> torch.Tensor | np.ndarray:
    """A host result back where the session's tensors live (string arrays stay numpy)."""
    array = np.asarray(array)
    if array.dtype.kind in "OSU":
        return array.astype(object)
    return dtypes.from_numpy(np.ascontiguousarray(array), ctx.device if ctx is not None else "cpu")


def _strings(array: np.ndarray) -> np.ndarray:
    return np.asarray(array).astype(object)


# --- post transforms (the classifiers' and regressors' `post_transform`) ----------------------

def _softmax_zero(scores: np.ndarray) -> np.ndarray:
    out = np.zeros_like(scores)
    for row, values in enumerate(scores):
        v_max = values.max()
        nonzero = np.abs(values) > 1e-7
        row_out = np.where(nonzero, np.exp(values - v_max), values * np.exp(-v_max))
        total = row_out.sum()
        out[row] = 0.5 if total == 0 else row_out / total
    return out


def _probit(scores: np.ndarray) -> np.ndarray:
    # onnxruntime's approximation of sqrt(2) * erfinv(2p - 1) (Winitzki, a = 0.147)
    x = scores * 2 - 1
    sgn = np.where(x < 0, -1.0, 1.0)
    w = (1.0 - x) * (1.0 + x)
    with np.errstate(divide="ignore", invalid="ignore"):
        log = np.log(w)
        v = 2.0 / (np.pi * 0.147) + 0.5 * log
        v3 = -v + np.sqrt(v * v - log / 0.147)
        res = np.where(w == 0, 0.0, sgn * np.sqrt(v3))
    return (1.41421356 * res).astype(scores.dtype)


def _post(scores: np.ndarray, kind: str, op: str) -> np.ndarray:
    """`scores` [N, C] through the ONNX-ML ``post_transform`` named `kind`."""
    if kind in ("NONE", "", None):
        return scores
    if kind == "LOGISTIC":
        return (1.0 / (1.0 + np.exp(-scores))).astype(scores.dtype)
    if kind == "SOFTMAX":
        e = np.exp(scores - scores.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(scores.dtype)
    if kind == "SOFTMAX_ZERO":
        return _softmax_zero(scores)
    if kind == "PROBIT":
        return _probit(scores)
    raise InvalidArgument(f"{op}: post_transform={kind!r}, expected NONE, LOGISTIC, SOFTMAX, SOFTMAX_ZERO or PROBIT")


def _labels(index: np.ndarray, ints, strings, op: str) -> np.ndarray:
    if strings:
        return np.array(strings, dtype=object)[index]
    if ints:
        return np.asarray(ints, dtype=np.int64)[index]
    raise InvalidArgument(f"{op}: neither classlabels_int64s/ints nor classlabels_strings is set")


# --- tensor work -------------------------------------------------------------------------------

@register("Binarizer", since=1, domain=ML)
def Binarizer(X, *, threshold=0.0):
    """ONNX-ML Binarizer: 1 where X > threshold, else 0 (X's dtype)."""
    return (X > threshold).to(X.dtype)


@register("Scaler", since=1, domain=ML)
def Scaler(X, *, offset=None, scale=None):
    """ONNX-ML Scaler: (X - offset) * scale, per feature (last axis) or one value for all."""
    dtype = X.dtype if X.is_floating_point() else torch.float32
    x = X.to(dtype)
    if offset:
        x = x - torch.tensor(offset, dtype=dtype, device=X.device)
    if scale:
        x = x * torch.tensor(scale, dtype=dtype, device=X.device)
    return x.to(torch.float32)


@register("Normalizer", since=1, domain=ML)
def Normalizer(X, *, norm="MAX"):
    """ONNX-ML Normalizer: each row divided by its MAX, L1 or L2 norm (float32 result)."""
    x = X.to(torch.float32)
    if x.dim() == 1:
        x = x.unsqueeze(0)
    if norm == "MAX":
        d = x.max(dim=-1, keepdim=True).values
    elif norm == "L1":
        d = x.abs().sum(dim=-1, keepdim=True)
    elif norm == "L2":
        d = x.square().sum(dim=-1, keepdim=True).sqrt()
    else:
        raise InvalidArgument(f"Normalizer: norm={norm!r}, expected MAX, L1 or L2")
    return x / d


@register("LinearRegressor", since=1, domain=ML)
def LinearRegressor(X, *, coefficients=None, intercepts=None, targets=1, post_transform="NONE"):
    """ONNX-ML LinearRegressor: X [N, F] @ coefficients [targets, F]^T + intercepts."""
    x = X.to(torch.float32)
    if x.dim() == 1:
        x = x.unsqueeze(0)
    coef = torch.tensor(coefficients or [], dtype=torch.float32, device=X.device).reshape(targets, -1)
    if coef.shape[1] != x.shape[1]:
        raise InvalidArgument(f"LinearRegressor: {coef.shape[1]} coefficients per target, input has "
                              f"{x.shape[1]} features")
    y = x @ coef.T
    if intercepts:
        y = y + torch.tensor(intercepts, dtype=torch.float32, device=X.device)
    if post_transform not in ("NONE", ""):
        y = torch.from_numpy(_post(dtypes.to_numpy(y), post_transform, "LinearRegressor")).to(X.device)
    return y


@register("LinearClassifier", since=1, domain=ML, syncs=(0,))
def LinearClassifier(X, *, classlabels_ints=None, classlabels_strings=None, coefficients=None, intercepts=None,
                     multi_class=0, post_transform="NONE", ctx=None):
    """ONNX-ML LinearClassifier: scores = X @ coefficients^T + intercepts, then post_transform;
    the label is the best class (one score row: its sign, or 0.5 after a transform)."""
    x = _host(X).astype(np.float64 if _host(X).dtype == np.float64 else np.float32)
    if x.ndim == 1:
        x = x[None, :]
    coef = np.asarray(coefficients or [], dtype=x.dtype).reshape(-1, x.shape[1])
    scores = x @ coef.T
    if intercepts:
        scores = scores + np.asarray(intercepts, dtype=x.dtype)
    n_classes = max(len(classlabels_ints or []), len(classlabels_strings or []))
    if coef.shape[0] == 1 and n_classes == 2:
        scores = np.concatenate([-scores, scores], axis=1)
    scores = _post(scores.astype(np.float32), post_transform, "LinearClassifier")
    if scores.shape[1] > 1:
        labels = _labels(np.argmax(scores, axis=1), classlabels_ints, classlabels_strings, "LinearClassifier")
    else:
        threshold = 0 if post_transform in ("NONE", "") else 0.5
        positive = scores[:, 0] >= threshold
        if classlabels_strings:
            labels = np.where(positive, classlabels_strings[0], classlabels_strings[1]
                              if len(classlabels_strings) > 1 else "").astype(object)
        else:
            labels = np.where(positive, (classlabels_ints or [1])[0], 0).astype(np.int64)
    return _device(labels, ctx), _device(scores, ctx)


@register("ArrayFeatureExtractor", since=1, domain=ML)
def ArrayFeatureExtractor(X, Y, *, ctx=None):
    """ONNX-ML ArrayFeatureExtractor: X[..., Y] (the last axis; a 1-D X gives a [1, len(Y)] row)."""
    index = Y.reshape(-1) if isinstance(Y, torch.Tensor) else torch.as_tensor(np.asarray(Y).reshape(-1))
    if isinstance(X, np.ndarray):  # strings
        out = np.take(X, index.cpu().numpy(), axis=-1)
        return out.reshape(1, -1) if X.ndim == 1 else out
    if X.dim() == 0:
        raise InvalidArgument("ArrayFeatureExtractor: input X is a scalar, expected at least one axis")
    out = torch.index_select(X, X.dim() - 1, index.to(X.device))
    return out.reshape(1, -1) if X.dim() == 1 else out


@register("Imputer", since=1, domain=ML)
def Imputer(X, *, imputed_value_floats=None, imputed_value_int64s=None, replaced_value_float=0.0,
            replaced_value_int64=0):
    """ONNX-ML Imputer: the `replaced_value` (NaN included) replaced per feature by `imputed_value`."""
    if imputed_value_floats:
        values, replace = imputed_value_floats, replaced_value_float
    elif imputed_value_int64s:
        values, replace = imputed_value_int64s, replaced_value_int64
    else:
        raise InvalidArgument("Imputer: neither imputed_value_floats nor imputed_value_int64s is set")
    fill = torch.tensor(values, dtype=X.dtype, device=X.device)
    hit = torch.isnan(X) if isinstance(replace, float) and math.isnan(replace) else X == replace
    return torch.where(hit, fill.expand_as(X) if fill.numel() == 1 else fill, X)


# --- host work: strings and lookups ------------------------------------------------------------

def _tensor_values(value) -> list:
    if value is None:
        return []
    return _host(value).reshape(-1).tolist()


@register("LabelEncoder", since=1, domain=ML, syncs=(0,))
def LabelEncoder(X, *, default_float=-0.0, default_int64=-1, default_string="_Unused", default_tensor=None,
                 keys_floats=None, keys_int64s=None, keys_strings=None, keys_tensor=None,
                 values_floats=None, values_int64s=None, values_strings=None, values_tensor=None,
                 classes_strings=None, ctx=None):
    """ONNX-ML LabelEncoder: each element of X mapped by keys -> values (default where absent);
    strings, int64, float and (opset 4) tensor keys and values."""
    if classes_strings:  # opset 1: strings <-> their index
        keys_strings, values_int64s = classes_strings, list(range(len(classes_strings)))
    keys = keys_floats or keys_int64s or keys_strings or _tensor_values(keys_tensor)
    if values_tensor is not None:
        values = _tensor_values(values_tensor)
        out_dtype = _host(values_tensor).dtype
        if default_tensor is not None:
            default = _tensor_values(default_tensor)[0]
        else:
            default = "_Unused" if out_dtype.kind in "OSU" else (-1 if out_dtype.kind in "iu" else -0.0)
    elif values_floats:
        values, out_dtype, default = values_floats, np.dtype(np.float32), default_float
    elif values_int64s:
        values, out_dtype, default = values_int64s, np.dtype(np.int64), default_int64
    elif values_strings:
        values, out_dtype, default = values_strings, np.dtype(object), default_string
    else:
        raise InvalidArgument("LabelEncoder: no values_* attribute is set")
    if len(keys) != len(values):
        raise InvalidArgument(f"LabelEncoder: {len(keys)} keys and {len(values)} values")
    x = _host(X)
    table = dict(zip(keys, values))
    nan_value = next((v for k, v in table.items() if isinstance(k, float) and math.isnan(k)), default)
    flat = [nan_value if isinstance(k, float) and math.isnan(k) else table.get(k, default) for k in x.reshape(-1).tolist()]
    out = np.array(flat, dtype=object if out_dtype.kind in "OSU" else out_dtype).reshape(x.shape)
    return _device(out, ctx)


@register("OneHotEncoder", since=1, domain=ML, syncs=(0,))
def OneHotEncoder(X, *, cats_int64s=None, cats_strings=None, zeros=1, ctx=None):
    """ONNX-ML OneHotEncoder: a trailing axis of len(categories), 1.0 at each value's category."""
    cats = cats_int64s or cats_strings
    if not cats:
        raise InvalidArgument("OneHotEncoder: neither cats_int64s nor cats_strings is set")
    x = _host(X)
    if cats_int64s and x.dtype.kind == "f":
        x = x.astype(np.int64)
    index = {v: i for i, v in enumerate(cats)}
    hits = np.array([index.get(v, -1) for v in x.reshape(-1).tolist()], dtype=np.int64)
    if not zeros and (hits < 0).any():
        raise InvalidArgument(f"OneHotEncoder: a value of X is no category of {list(cats)[:8]} (zeros=0)")
    out = np.zeros((hits.size, len(cats)), dtype=np.float32)
    ok = hits >= 0
    out[np.nonzero(ok)[0], hits[ok]] = 1.0
    return _device(out.reshape(*x.shape, len(cats)), ctx)


@register("CastMap", since=1, domain=ML, syncs=(0,))
def CastMap(X, *, cast_to="TO_FLOAT", map_form="DENSE", max_map=1, ctx=None):
    """ONNX-ML CastMap: a map int64 -> value (a dict) as a [1, N] tensor, keys in ascending order."""
    if not isinstance(X, dict):
        raise InvalidArgument(f"CastMap: input X must be a map (a dict), got {type(X).__name__}")
    keys = sorted(X)
    if map_form == "SPARSE":
        values = [X.get(k, 0) for k in range(max_map)]
    else:
        values = [X[k] for k in keys]
    if cast_to == "TO_STRING":
        return np.array([[str(v) for v in values]], dtype=object)
    dtype = np.int64 if cast_to == "TO_INT64" else np.float32
    return _device(np.array([values], dtype=dtype), ctx)


@register("DictVectorizer", since=1, domain=ML, syncs=(0,))
def DictVectorizer(X, *, int64_vocabulary=None, string_vocabulary=None, ctx=None):
    """ONNX-ML DictVectorizer: a map (dict, or a list of dicts) as rows over the vocabulary."""
    vocab = string_vocabulary or int64_vocabulary or []
    rows = X if isinstance(X, list) else [X]
    if not all(isinstance(r, dict) for r in rows):
        raise InvalidArgument("DictVectorizer: input X must be a map (a dict) or a list of them")
    where = {v: i for i, v in enumerate(vocab)}
    values = [v for r in rows for v in r.values()]
    dtype = np.asarray(values).dtype if values else np.float32
    out = np.zeros((len(rows), len(vocab)), dtype=object if dtype.kind in "OSU" else dtype)
    for i, row in enumerate(rows):
        for k, v in row.items():
            if k in where:
                out[i, where[k]] = v
    return _device(out, ctx)


@register("ZipMap", since=1, domain=ML, syncs=(0,))
def ZipMap(X, *, classlabels_int64s=None, classlabels_strings=None):
    """ONNX-ML ZipMap: X [N, C] as a list of N dicts class label -> score (onnxruntime's Python
    form of a sequence of maps)."""
    labels = list(classlabels_strings or classlabels_int64s or [])
    x = _host(X)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != len(labels):
        raise InvalidArgument(f"ZipMap: input X has shape {list(x.shape)}, expected [N, {len(labels)}] "
                              f"(one column per class label)")
    return SequenceValue(dict(zip(labels, row)) for row in x.tolist())


# --- tree ensembles ----------------------------------------------------------------------------

_MODES = {"BRANCH_LEQ": 0, "BRANCH_LT": 1, "BRANCH_GTE": 2, "BRANCH_GT": 3, "BRANCH_EQ": 4, "BRANCH_NEQ": 5,
          "BRANCH_MEMBER": 6}
_AGGREGATES = {0: "AVERAGE", 1: "SUM", 2: "MIN", 3: "MAX"}
_POST = {0: "NONE", 1: "SOFTMAX", 2: "LOGISTIC", 3: "SOFTMAX_ZERO", 4: "PROBIT"}


@dataclass(frozen=True)
class Forest:
    """A tree ensemble, flattened: internal nodes by index (child >= 0: a node, < 0: leaf ~child),
    each leaf's contributions (leaf_weight [L, targets], leaf_hit [L, targets] for MIN/MAX)."""

    feature: np.ndarray
    split: np.ndarray
    mode: np.ndarray
    missing_true: np.ndarray
    true_child: np.ndarray
    false_child: np.ndarray
    members: dict  # node index -> the set's values (BRANCH_MEMBER)
    roots: np.ndarray  # per tree, encoded like a child
    leaf_weight: np.ndarray
    leaf_hit: np.ndarray
    n_targets: int
    aggregate: str

    def leaves(self, x: np.ndarray) -> np.ndarray:
        """The leaf each sample of `x` [N, F] reaches in each tree: [N, trees]."""
        n = x.shape[0]
        cur = np.broadcast_to(self.roots, (n, self.roots.size)).copy()
        rows = np.broadcast_to(np.arange(n)[:, None], cur.shape)
        for _ in range(self.feature.size + 1):
            active = cur >= 0
            if not active.any():
                break
            node = cur[active]
            v = x[rows[active], self.feature[node]]
            s = self.split[node]
            m = self.mode[node]
            cond = np.select([m == 0, m == 1, m == 2, m == 3, m == 4, m == 5],
                             [v <= s, v < s, v >= s, v > s, v == s, v != s], default=False)
            for j in np.unique(node[m == 6]):
                pick = node == j
                cond[pick] = np.isin(v[pick], self.members[int(j)])
            cond |= self.missing_true[node] & np.isnan(v)
            cur[active] = np.where(cond, self.true_child[node], self.false_child[node])
        return ~cur

    def scores(self, x: np.ndarray, dtype=np.float32) -> np.ndarray:
        """The aggregated scores [N, targets] of `x` [N, F]."""
        leaves = self.leaves(x)
        n_trees = leaves.shape[1]
        w = self.leaf_weight[leaves]  # [N, trees, targets]
        if self.aggregate in ("SUM", "AVERAGE"):
            out = w.sum(axis=1)
            if self.aggregate == "AVERAGE":
                out = out / max(n_trees, 1)
            return out.astype(dtype)
        hit = self.leaf_hit[leaves]
        if self.aggregate == "MIN":
            return np.where(hit, w, np.finfo(dtype).max).min(axis=1).astype(dtype)
        return np.where(hit, w, np.finfo(dtype).min).max(axis=1).astype(dtype)


def _forest(*, n_nodes, feature, split, mode, missing, true_ids, false_ids, true_leaf, false_leaf, leaf_of,
            roots, leaf_targets, n_leaves, n_targets, aggregate, members=None) -> Forest:
    """Build a `Forest`; children are node indices unless `true_leaf`/`false_leaf` say leaf
    (then `leaf_of` maps them to a leaf index)."""
    def enc(ids, leaf):
        return np.array([~leaf_of(i) if lf else i for i, lf in zip(ids, leaf)], dtype=np.int64)

    weight = np.zeros((max(n_leaves, 1), max(n_targets, 1)), dtype=np.float64)
    hit = np.zeros(weight.shape, dtype=bool)
    for leaf, target, value in leaf_targets:
        weight[leaf, target] += value
        hit[leaf, target] = True
    return Forest(np.asarray(feature, dtype=np.int64).reshape(n_nodes), np.asarray(split, dtype=np.float64),
                  np.asarray(mode, dtype=np.int64), np.asarray(missing, dtype=bool),
                  enc(true_ids, true_leaf), enc(false_ids, false_leaf), members or {},
                  np.asarray(roots, dtype=np.int64), weight, hit, n_targets, aggregate)


def _attr(value) -> list:
    return _tensor_values(value) if isinstance(value, (torch.Tensor, np.ndarray)) else list(value or [])


def prepare_tree_ensemble(*inputs, aggregate_function=1, leaf_targetids=(), leaf_weights=None,
                          membership_values=None, n_targets=1, nodes_falseleafs=(), nodes_falsenodeids=(),
                          nodes_featureids=(), nodes_missing_value_tracks_true=None, nodes_modes=None,
                          nodes_splits=None, nodes_trueleafs=(), nodes_truenodeids=(), tree_roots=(),
                          **_ignored) -> Forest:
    """The TreeEnsemble (ml opset 5) attributes as a `Forest`."""
    modes = [int(m) for m in _attr(nodes_modes)]
    n = len(modes)
    missing = _attr(nodes_missing_value_tracks_true) or [0] * n
    members, sets = {}, _attr(membership_values)
    cursor = 0
    for j, m in enumerate(modes):
        if m == 6:
            end = cursor
            while end < len(sets) and not math.isnan(sets[end]):
                end += 1
            members[j] = np.asarray(sets[cursor:end], dtype=np.float64)
            cursor = end + 1
    weights = _attr(leaf_weights)
    roots = []
    for r in tree_roots:  # a tree that is one leaf
        leaf = nodes_trueleafs[r] and nodes_falseleafs[r] and nodes_truenodeids[r] == nodes_falsenodeids[r]
        roots.append(~nodes_truenodeids[r] if leaf else r)
    return _forest(n_nodes=n, feature=nodes_featureids, split=_attr(nodes_splits), mode=modes, missing=missing,
                   true_ids=nodes_truenodeids, false_ids=nodes_falsenodeids, true_leaf=nodes_trueleafs,
                   false_leaf=nodes_falseleafs, leaf_of=lambda i: i, roots=roots,
                   leaf_targets=[(i, t, w) for i, (t, w) in enumerate(zip(leaf_targetids, weights))],
                   n_leaves=len(weights), n_targets=int(n_targets), aggregate=_AGGREGATES[int(aggregate_function)],
                   members=members)


def _classic_forest(*, nodes_treeids, nodes_nodeids, nodes_modes, nodes_featureids, nodes_values,
                    nodes_truenodeids, nodes_falsenodeids, nodes_missing_value_tracks_true, target_treeids,
                    target_nodeids, target_ids, target_weights, n_targets, aggregate) -> Forest:
    """TreeEnsembleRegressor/Classifier attributes (nodes and leaves by (tree, node id)) as a `Forest`."""
    keys = list(zip(nodes_treeids, nodes_nodeids))
    is_leaf = [m == "LEAF" for m in nodes_modes]
    internal = {k: i for i, k in enumerate(k for k, lf in zip(keys, is_leaf) if not lf)}
    leaf_index = {k: i for i, k in enumerate(k for k, lf in zip(keys, is_leaf) if lf)}
    inner = [i for i, lf in enumerate(is_leaf) if not lf]
    for m in set(nodes_modes) - set(_MODES) - {"LEAF"}:
        raise InvalidArgument(f"tree ensemble: nodes_modes has {m!r}, expected LEAF or one of {sorted(_MODES)}")

    def child(i, ids):
        return (nodes_treeids[i], ids[i])

    true_keys = [child(i, nodes_truenodeids) for i in inner]
    false_keys = [child(i, nodes_falsenodeids) for i in inner]
    children = set(true_keys) | set(false_keys)
    roots, seen = [], set()
    for k in keys:  # the first node of each tree that no node points to
        if k[0] not in seen and k not in children:
            seen.add(k[0])
            roots.append(internal[k] if k in internal else ~leaf_index[k])
    missing = _attr(nodes_missing_value_tracks_true) or [0] * len(keys)
    contributions = []
    for tree, node, target, weight in zip(target_treeids, target_nodeids, target_ids, target_weights):
        if (tree, node) not in leaf_index:
            raise InvalidArgument(f"tree ensemble: a target names tree {tree} node {node}, which is no leaf")
        contributions.append((leaf_index[tree, node], int(target), float(weight)))
    return _forest_from_keys(inner, internal, leaf_index, true_keys, false_keys, nodes_featureids, nodes_values,
                             nodes_modes, missing, roots, contributions, n_targets, aggregate)


def _forest_from_keys(inner, internal, leaf_index, true_keys, false_keys, featureids, values, modes, missing,
                      roots, contributions, n_targets, aggregate) -> Forest:
    def enc(key):
        return internal[key] if key in internal else ~leaf_index[key]

    weight = np.zeros((max(len(leaf_index), 1), max(n_targets, 1)), dtype=np.float64)
    hit = np.zeros(weight.shape, dtype=bool)
    for leaf, target, value in contributions:
        weight[leaf, target] += value
        hit[leaf, target] = True
    return Forest(np.array([featureids[i] for i in inner], dtype=np.int64),
                  np.array([values[i] for i in inner], dtype=np.float64),
                  np.array([_MODES[modes[i]] for i in inner], dtype=np.int64),
                  np.array([bool(missing[i]) for i in inner], dtype=bool),
                  np.array([enc(k) for k in true_keys], dtype=np.int64),
                  np.array([enc(k) for k in false_keys], dtype=np.int64), {},
                  np.array(roots, dtype=np.int64), weight, hit, n_targets, aggregate)


def _features(X, op: str) -> np.ndarray:
    x = _host(X)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise InvalidArgument(f"{op}: input X has shape {list(x.shape)}, expected [N, features]")
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float32)


@register("TreeEnsemble", since=5, domain=ML, prepare=prepare_tree_ensemble, syncs=(0,))
def TreeEnsemble(X, *, post_transform=0, prepared=None, ctx=None, **attrs):
    """ONNX-ML TreeEnsemble (opset 5): every tree's leaf values aggregated per target."""
    forest = prepared if prepared is not None else prepare_tree_ensemble(**attrs)
    x = _features(X, "TreeEnsemble")
    scores = forest.scores(x, x.dtype)
    return _device(_post(scores, _POST[int(post_transform)], "TreeEnsemble"), ctx)


def prepare_tree_regressor(*inputs, aggregate_function="SUM", n_targets=1, nodes_treeids=(), nodes_nodeids=(),
                           nodes_modes=(), nodes_featureids=(), nodes_values=None, nodes_values_as_tensor=None,
                           nodes_truenodeids=(), nodes_falsenodeids=(), nodes_missing_value_tracks_true=None,
                           target_treeids=(), target_nodeids=(), target_ids=(), target_weights=None,
                           target_weights_as_tensor=None, **_ignored) -> Forest:
    """The TreeEnsembleRegressor attributes as a `Forest`."""
    return _classic_forest(
        nodes_treeids=list(nodes_treeids), nodes_nodeids=list(nodes_nodeids), nodes_modes=list(nodes_modes),
        nodes_featureids=list(nodes_featureids), nodes_values=_attr(nodes_values) or _attr(nodes_values_as_tensor),
        nodes_truenodeids=list(nodes_truenodeids), nodes_falsenodeids=list(nodes_falsenodeids),
        nodes_missing_value_tracks_true=nodes_missing_value_tracks_true, target_treeids=list(target_treeids),
        target_nodeids=list(target_nodeids), target_ids=list(target_ids),
        target_weights=_attr(target_weights) or _attr(target_weights_as_tensor), n_targets=int(n_targets),
        aggregate=aggregate_function)


@register("TreeEnsembleRegressor", since=1, domain=ML, prepare=prepare_tree_regressor, syncs=(0,))
def TreeEnsembleRegressor(X, *, base_values=None, base_values_as_tensor=None, post_transform="NONE",
                          prepared=None, ctx=None, **attrs):
    """ONNX-ML TreeEnsembleRegressor: leaf target weights aggregated per target, plus base_values."""
    forest = prepared if prepared is not None else prepare_tree_regressor(**attrs)
    x = _features(X, "TreeEnsembleRegressor")
    scores = forest.scores(x, np.float32)
    base = _attr(base_values) or _attr(base_values_as_tensor)
    if base:
        scores = scores + np.asarray(base, dtype=np.float32)
    return _device(_post(scores, post_transform, "TreeEnsembleRegressor"), ctx)


def prepare_tree_classifier(*inputs, class_treeids=(), class_nodeids=(), class_ids=(), class_weights=None,
                            class_weights_as_tensor=None, classlabels_int64s=None, classlabels_strings=None,
                            nodes_values=None, nodes_values_as_tensor=None, nodes_treeids=(), nodes_nodeids=(),
                            nodes_modes=(), nodes_featureids=(), nodes_truenodeids=(), nodes_falsenodeids=(),
                            nodes_missing_value_tracks_true=None, **_ignored) -> Forest:
    """The TreeEnsembleClassifier attributes as a `Forest` (one target per class)."""
    n_classes = max(len(classlabels_int64s or []), len(classlabels_strings or []))
    return _classic_forest(
        nodes_treeids=list(nodes_treeids), nodes_nodeids=list(nodes_nodeids), nodes_modes=list(nodes_modes),
        nodes_featureids=list(nodes_featureids), nodes_values=_attr(nodes_values) or _attr(nodes_values_as_tensor),
        nodes_truenodeids=list(nodes_truenodeids), nodes_falsenodeids=list(nodes_falsenodeids),
        nodes_missing_value_tracks_true=nodes_missing_value_tracks_true, target_treeids=list(class_treeids),
        target_nodeids=list(class_nodeids), target_ids=list(class_ids),
        target_weights=_attr(class_weights) or _attr(class_weights_as_tensor), n_targets=n_classes,
        aggregate="SUM")


@register("TreeEnsembleClassifier", since=1, domain=ML, prepare=prepare_tree_classifier, syncs=(0,))
def TreeEnsembleClassifier(X, *, base_values=None, base_values_as_tensor=None, class_ids=(),
                           classlabels_int64s=None, classlabels_strings=None, post_transform="NONE",
                           prepared=None, ctx=None, **attrs):
    """ONNX-ML TreeEnsembleClassifier: per-class scores (leaf class weights summed, plus
    base_values, through post_transform) and the best class's label; one class id among two
    labels is the binary case (score of class 1, class 0 its complement), as onnxruntime does."""
    forest = prepared if prepared is not None else prepare_tree_classifier(
        class_ids=class_ids, classlabels_int64s=classlabels_int64s, classlabels_strings=classlabels_strings, **attrs)
    x = _features(X, "TreeEnsembleClassifier")
    scores = forest.scores(x, np.float32)
    base = _attr(base_values) or _attr(base_values_as_tensor)
    if base:
        scores = scores + np.asarray(base, dtype=np.float32)
    classes = list(classlabels_strings or classlabels_int64s or [])
    if len(set(class_ids)) == 1 and len(classes) == 2:
        score = scores[:, class_ids[0]].copy() if scores.shape[1] > 1 else scores[:, 0].copy()
        scores = np.stack([1 - score if post_transform in ("NONE", "PROBIT") else -score, score], axis=1)
    scores = _post(scores.astype(np.float32), post_transform, "TreeEnsembleClassifier")
    labels = _labels(np.argmax(scores, axis=1), classlabels_int64s, classlabels_strings, "TreeEnsembleClassifier")
    return _device(labels, ctx), _device(scores, ctx)
