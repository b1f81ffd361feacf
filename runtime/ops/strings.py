"""String and text ops (RegexFullMatch, StringConcat, StringSplit, StringNormalizer,
TfIdfVectorizer), host work in numpy and Python's ``re``: a string tensor is a numpy object array of ``str``, as in onnxruntime.
Their numeric results (bools, counts) go to the session's device. Equal on strings lives with
the other comparisons (math.py)."""
from __future__ import annotations

import re

import numpy as np

from tritonnx.errors import InvalidArgument
from tritonnx.runtime import dtypes
from tritonnx.runtime.registry import register


def _strings(op: str, name: str, x) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "OSU":
        raise InvalidArgument(f"{op}: input {name} must be a string tensor, got {type(x).__name__}")
    return x.astype(object)


def _numbers(array: np.ndarray, ctx):
    return dtypes.from_numpy(np.ascontiguousarray(array), ctx.device if ctx is not None else "cpu")


@register("RegexFullMatch", since=20)
def RegexFullMatch(X, *, pattern="", ctx=None):
    """ONNX RegexFullMatch: whether each string matches `pattern` in full (RE2 syntax; Python's
    ``re`` accepts the common subset)."""
    x = _strings("RegexFullMatch", "X", X)
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise InvalidArgument(f"RegexFullMatch: pattern {pattern!r} does not compile: {exc}") from None
    out = np.array([regex.fullmatch(s) is not None for s in x.reshape(-1)], dtype=bool).reshape(x.shape)
    return _numbers(out, ctx)


@register("StringConcat", since=20)
def StringConcat(X, Y):
    """ONNX StringConcat: element-wise X + Y with numpy broadcasting."""
    x, y = _strings("StringConcat", "X", X), _strings("StringConcat", "Y", Y)
    return np.asarray(np.char.add(x.astype(str), y.astype(str)) if x.size and y.size
                      else np.broadcast_arrays(x, y)[0], dtype=object)


@register("StringSplit", since=20)
def StringSplit(X, *, delimiter=None, maxsplit=None, ctx=None):
    """ONNX StringSplit: each string split by `delimiter` (none or empty: runs of whitespace), at
    most `maxsplit` times; Y pads the substrings with "" to the longest, Z counts them."""
    x = _strings("StringSplit", "X", X)
    sep = delimiter or None
    limit = -1 if maxsplit is None else int(maxsplit)
    parts = [s.split(sep, limit) for s in x.reshape(-1)]
    width = max((len(p) for p in parts), default=0)
    y = np.full((len(parts), width), "", dtype=object)
    for i, p in enumerate(parts):
        y[i, :len(p)] = p
    z = np.array([len(p) for p in parts], dtype=np.int64).reshape(x.shape)
    return y.reshape(*x.shape, width), _numbers(z, ctx)


@register("StringNormalizer", since=10)
def StringNormalizer(X, *, case_change_action="NONE", is_case_sensitive=0, locale="", stopwords=None):
    """ONNX StringNormalizer: stop words removed (case-insensitively unless `is_case_sensitive`),
    then LOWER/UPPER/NONE; X is [C] or [1, C]; an empty result is [""] (shape [1] or [1, 1])."""
    x = _strings("StringNormalizer", "X", X)
    if x.ndim not in (1, 2) or (x.ndim == 2 and x.shape[0] != 1):
        raise InvalidArgument(f"StringNormalizer: input X has shape {list(x.shape)}, expected [C] or [1, C]")
    if case_change_action not in ("NONE", "LOWER", "UPPER"):
        raise InvalidArgument(f"StringNormalizer: case_change_action={case_change_action!r}, "
                              "expected NONE, LOWER or UPPER")
    words = list(x.reshape(-1))
    stop = set(stopwords or [])
    if stop:
        if is_case_sensitive:
            words = [w for w in words if w not in stop]
        else:
            lowered = {s.lower() for s in stop}
            words = [w for w in words if w.lower() not in lowered]
    if case_change_action == "LOWER":
        words = [w.lower() for w in words]
    elif case_change_action == "UPPER":
        words = [w.upper() for w in words]
    if not words:
        words = [""]
    out = np.array(words, dtype=object)
    return out.reshape(1, -1) if x.ndim == 2 else out


@register("TfIdfVectorizer", since=9, syncs=(0,))
def TfIdfVectorizer(X, *, max_gram_length=1, max_skip_count=0, min_gram_length=1, mode="TF", ngram_counts=None,
                    ngram_indexes=None, pool_int64s=None, pool_strings=None, weights=None, ctx=None):
    """ONNX TfIdfVectorizer: counts of the pool's n-grams (sizes min..max, items `skip` apart for
    skip 0..max_skip_count; unigrams once) in each row of X ([C] or [N, C], int or strings),
    weighted by `mode` (TF, IDF, TFIDF) -> [N, max(ngram_indexes) + 1] float32."""
    pool = list(pool_strings or pool_int64s or [])
    counts, indexes = list(ngram_counts or []), list(ngram_indexes or [])
    if mode not in ("TF", "IDF", "TFIDF"):
        raise InvalidArgument(f"TfIdfVectorizer: mode={mode!r}, expected TF, IDF or TFIDF")
    grams: dict[tuple, int] = {}  # n-gram -> output column
    ngram_id = 0
    for i, start in enumerate(counts):
        size = i + 1
        end = counts[i + 1] if i + 1 < len(counts) else len(pool)
        for j in range(start, end, size):
            if min_gram_length <= size <= max_gram_length:
                grams[tuple(pool[j:j + size])] = indexes[ngram_id]
            ngram_id += 1
    width = max(indexes) + 1 if indexes else 0
    x = X if isinstance(X, np.ndarray) else dtypes.to_numpy(X)
    rows = x.reshape(1, -1) if x.ndim <= 1 else x.reshape(x.shape[0], -1)
    freq = np.zeros((rows.shape[0], width), dtype=np.float32)
    for r, row in enumerate(rows.tolist()):
        for skip in range(1, max_skip_count + 2):
            for size in range(max(min_gram_length, 1 if skip == 1 else 2), max_gram_length + 1):
                span = (size - 1) * skip
                for start in range(len(row) - span):
                    column = grams.get(tuple(row[start:start + span + 1:skip]))
                    if column is not None:
                        freq[r, column] += 1
    w = np.asarray(weights or [], dtype=np.float32)
    if mode == "IDF":
        freq = np.where(freq > 0, w if w.size else 1.0, 0.0).astype(np.float32)
    elif mode == "TFIDF" and w.size:
        freq = freq * w
    out = freq.reshape(width) if x.ndim <= 1 else freq
    return _numbers(out, ctx)
