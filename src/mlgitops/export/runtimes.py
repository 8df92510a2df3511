"""Generated scorers without dependencies: a C99 header (`scorer.h` + `main.c`) and a JS module.

Both carry the lossless binned form with float64 leaves (or the folded linear model), baked in
as tables: encode each raw field, bin it, walk the trees (or add the linear terms), then the
same sigmoid/mean as scikit-learn, in the same order. docs/export.md shows how to use them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable

import numpy as np

from mlgitops.export.ir import (
    LEAF,
    CategoricalInput,
    ExportModel,
    Linear,
    NumericInput,
    decision_threshold,
)
from mlgitops.export.quantize import BinnedTrees


def _num(value: float, nan: str) -> str:
    """A float literal that reads back as the same double (C: NAN/INFINITY; JS: NaN/Infinity)."""
    value = float(value)
    if math.isnan(value):
        return nan
    if math.isinf(value):
        word = "INFINITY" if nan == "NAN" else "Infinity"
        return word if value > 0 else f"-{word}"
    return repr(value)


def _c(value: float) -> str:
    return _num(value, "NAN")


def _c_array(ctype: str, name: str, values: Iterable[str]) -> str:
    items = list(values) or ["0"]
    body = ",".join(items)
    return f"static const {ctype} {name}[{len(items)}] = {{{body}}};\n"


def _c_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=True).replace("\\u", "\\u")  # C99 accepts \\uXXXX


def _tables(model: ExportModel) -> dict[str, list]:
    """Per-feature encoding tables shared by both generators."""
    kind, fill, f32, cat_off, cat_str, cat_val, unknown, missing = [], [], [], [0], [], [], [], []
    for spec in model.inputs:
        if isinstance(spec, NumericInput):
            kind.append(0)
            fill.append(spec.missing)
            f32.append(int(spec.float32))
            unknown.append(math.nan)
            missing.append(math.nan)
        else:
            assert isinstance(spec, CategoricalInput)
            kind.append(1)
            fill.append(math.nan)
            f32.append(0)
            cat_str.extend(spec.categories)
            cat_val.extend(spec.values)
            unknown.append(spec.unknown)
            missing.append(spec.missing)
        cat_off.append(len(cat_str))
    return {
        "kind": kind,
        "fill": fill,
        "f32": f32,
        "cat_off": cat_off,
        "cat_str": cat_str,
        "cat_val": cat_val,
        "unknown": unknown,
        "missing": missing,
    }


def _tree_tables(binned: BinnedTrees) -> dict[str, list]:
    trees = binned.trees
    thr, thr_off = [], [0]
    for table in binned.tables:
        thr.extend(table if table is not None else [])
        thr_off.append(len(thr))
    bitsets, split = [], []
    for node in range(len(trees.feature)):
        if trees.categorical[node]:
            bits = np.zeros(256, dtype=bool)
            bits[sorted(trees.cat_sets[node])] = True
            split.append(len(bitsets) // 32)
            bitsets.extend(int(b) for b in np.packbits(bits, bitorder="little"))
        else:
            split.append(int(trees.threshold[node]) if trees.feature[node] != LEAF else 0)
    flags = [
        int(f != LEAF) | int(c) << 1 | int(m) << 2
        for f, c, m in zip(trees.feature, trees.categorical, trees.missing_left, strict=True)
    ]
    return {
        "thr": thr,
        "thr_off": thr_off,
        "is_cat": [int(t is None) for t in binned.tables],
        "feature": [max(int(f), 0) for f in trees.feature],
        "split": split,
        "flags": flags,
        "left": [max(int(v), 0) for v in trees.left],
        "right": [max(int(v), 0) for v in trees.right],
        "value": [float(v) for v in trees.value],
        "roots": [int(r) for r in trees.roots],
        "bitsets": bitsets,
    }


_C_CODE = r"""
static int mlg_find(int f, const char *s) {
    int lo = mlg_cat_off[f], hi = mlg_cat_off[f + 1] - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(mlg_cat_str[mid], s);
        if (c == 0) return mid;
        if (c < 0) lo = mid + 1; else hi = mid - 1;
    }
    return -1;
}

/* One raw field (NULL or "" = missing) -> the encoded value of feature f. */
static double mlg_encode(int f, const char *field) {
    if (mlg_kind[f] == 1) {
        int i;
        if (field == NULL || field[0] == '\0') return mlg_missing[f];
        i = mlg_find(f, field);
        return i < 0 ? mlg_unknown[f] : mlg_cat_val[i];
    } else {
        double x = (field == NULL || field[0] == '\0') ? NAN : strtod(field, NULL);
        if (isnan(x) && !isnan(mlg_fill[f])) x = mlg_fill[f];
        if (mlg_f32[f]) x = (double)(float)x;
        return x;
    }
}
"""

_C_TREES = r"""
static double mlg_score_encoded(const double *x) {
    int bins[MLG_N_FEATURES], f, t;
    double z = MLG_BASE;
    for (f = 0; f < MLG_N_FEATURES; f++) {
        if (isnan(x[f])) { bins[f] = -1; continue; }
        if (mlg_is_cat[f]) { bins[f] = (int)x[f]; continue; }
        { /* number of thresholds below x: x <= thr[k] iff bin <= k */
            int lo = mlg_thr_off[f], hi = mlg_thr_off[f + 1];
            while (lo < hi) {
                int mid = (lo + hi) / 2;
                if (mlg_thr[mid] < x[f]) lo = mid + 1; else hi = mid;
            }
            bins[f] = lo - mlg_thr_off[f];
        }
    }
    for (t = 0; t < MLG_N_TREES; t++) {
        int n = mlg_roots[t];
        while (mlg_flags[n] & 1) {
            int b = bins[mlg_feature[n]], left;
            if (b < 0) left = (mlg_flags[n] >> 2) & 1;
            else if (mlg_flags[n] & 2)
                left = b < 256 && ((mlg_bitsets[mlg_split[n] * 32 + (b >> 3)] >> (b & 7)) & 1);
            else left = b <= mlg_split[n];
            n = left ? mlg_left[n] : mlg_right[n];
        }
        z += mlg_value[n];
    }
    return MLG_MEAN ? z / MLG_N_TREES : 1.0 / (1.0 + exp(-z));
}
"""

_C_LINEAR = r"""
static double mlg_score_encoded(const double *x) {
    double z = 0.0;
    int f;
    for (f = 0; f < MLG_N_FEATURES; f++)
        z += isnan(x[f]) ? mlg_missing_term[f] : x[f] * mlg_slope[f] + mlg_offset[f];
    return 1.0 / (1.0 + exp(-(z + MLG_INTERCEPT)));
}
"""

_C_API = r"""
/* fields[i] is the raw text of feature mlg_names[i]; NULL or "" means missing. */
static double mlg_score(const char *const *fields) {
    double x[MLG_N_FEATURES];
    int f;
    for (f = 0; f < MLG_N_FEATURES; f++) x[f] = mlg_encode(f, fields[f]);
    return mlg_score_encoded(x);
}

static int mlg_decide(double score) { return score >= MLG_THRESHOLD; }
#endif
"""


def c_header(model: ExportModel, binned: BinnedTrees | None, threshold: float) -> str:
    t = _tables(model)
    out = [
        f"/* Generated by mlgitops from a {model.model_type} pipeline. Do not edit. */\n",
        "#ifndef MLG_SCORER_H\n#define MLG_SCORER_H\n#include <math.h>\n#include <stdlib.h>\n",
        "#include <string.h>\n",
        f"#define MLG_N_FEATURES {len(model.inputs)}\n",
        f"#define MLG_THRESHOLD {decision_threshold(threshold)!r}\n",
        _c_array("char *const", "mlg_names", (_c_string(n) for n in model.names)),
        _c_array("int", "mlg_kind", map(str, t["kind"])),
        _c_array("double", "mlg_fill", (_num(v, "NAN") for v in t["fill"])),
        _c_array("int", "mlg_f32", map(str, t["f32"])),
        _c_array("int", "mlg_cat_off", map(str, t["cat_off"])),
        _c_array("char *const", "mlg_cat_str", (_c_string(s) for s in t["cat_str"])),
        _c_array("double", "mlg_cat_val", (_num(v, "NAN") for v in t["cat_val"])),
        _c_array("double", "mlg_unknown", (_num(v, "NAN") for v in t["unknown"])),
        _c_array("double", "mlg_missing", (_num(v, "NAN") for v in t["missing"])),
        _C_CODE,
    ]
    if binned is not None:
        tt = _tree_tables(binned)
        out += [
            f"#define MLG_N_TREES {len(tt['roots'])}\n",
            f"#define MLG_BASE {_c(binned.trees.base)}\n",
            f"#define MLG_MEAN {int(binned.trees.aggregate == 'mean')}\n",
        ]
        out += [_c_array("double", "mlg_thr", map(_c, tt["thr"]))]
        for name in ("thr_off", "is_cat", "feature", "split", "left", "right", "roots"):
            out.append(_c_array("int", f"mlg_{name}", map(str, tt[name])))
        out.append(_c_array("unsigned char", "mlg_flags", map(str, tt["flags"])))
        out.append(_c_array("unsigned char", "mlg_bitsets", map(str, tt["bitsets"])))
        out.append(_c_array("double", "mlg_value", map(_c, tt["value"])))
        out.append(_C_TREES)
    else:
        linear = model.model
        assert isinstance(linear, Linear)
        out.append(f"#define MLG_INTERCEPT {_c(linear.intercept)}\n")
        for name in ("slope", "offset", "missing_term"):
            out.append(_c_array("double", f"mlg_{name}", map(_c, getattr(linear, name))))
        out.append(_C_LINEAR)
    out.append(_C_API)
    return "".join(out)


C_MAIN = r"""/* Example: score CSV rows from stdin (header row names the columns; plain
   comma-separated, no quoted commas; an empty field is missing). Prints "score,decision"
   per row. rows.csv beside this file is an example input.
   Build outside the export directory (a DVC output), e.g. from the project root:
   mkdir -p build && cc -O2 -std=c99 -o build/scorer artifacts/export/main.c -lm */
#include <stdio.h>
#include "scorer.h"

#define MAX_LINE 65536
#define MAX_COLS 1024

static int split(char *line, char **cols) {
    int n = 0;
    char *p = line;
    line[strcspn(line, "\r\n")] = '\0';
    cols[n++] = p;
    for (; *p && n < MAX_COLS; p++)
        if (*p == ',') {
            *p = '\0';
            cols[n++] = p + 1;
        }
    return n;
}

int main(void) {
    static char line[MAX_LINE], header[MAX_LINE];
    char *cols[MAX_COLS], *names[MAX_COLS];
    const char *fields[MLG_N_FEATURES];
    int where[MLG_N_FEATURES], n, f, c;
    if (!fgets(header, sizeof header, stdin)) return 1;
    n = split(header, names);
    for (f = 0; f < MLG_N_FEATURES; f++) {
        where[f] = -1;
        for (c = 0; c < n; c++)
            if (strcmp(names[c], mlg_names[f]) == 0) where[f] = c;
        if (where[f] < 0) {
            fprintf(stderr, "missing column %s\n", mlg_names[f]);
            return 2;
        }
    }
    while (fgets(line, sizeof line, stdin)) {
        double s;
        int m = split(line, cols);
        for (f = 0; f < MLG_N_FEATURES; f++) fields[f] = where[f] < m ? cols[where[f]] : NULL;
        s = mlg_score(fields);
        printf("%.17g,%d\n", s, mlg_decide(s));
    }
    return 0;
}
"""

# rows.csv: a few test rows for trying the C scorer (and any other runtime) on.
EXAMPLE_ROWS = 20
# What plain comma-separated text (main.c's reader) cannot carry inside a field.
_CSV_UNSAFE = (",", "\n", "\r")


def _csv_field(spec: NumericInput | CategoricalInput, value: object) -> str | None:
    """The text main.c reads back as `value` (empty = missing); None if it has none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(spec, CategoricalInput):
        # The scorers compare a category's text; only strings are known by their text.
        if not isinstance(value, str) or value == "" or any(c in value for c in _CSV_UNSAFE):
            return None
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    # repr is the shortest text strtod reads back as the same double: the pipeline's score.
    return repr(value)


def example_rows(
    model: ExportModel, columns: list[list[object]], scores: np.ndarray, count: int = EXAMPLE_ROWS
) -> str:
    """`rows.csv`: `count` rows spread evenly over the ranks of `scores` (lowest first, so both
    decisions show), in the CSV main.c reads: a header of the feature names, then one line per
    row, an empty field for a missing value. Rows holding a value plain CSV cannot carry (a
    comma or line break in a category, a non-finite number) are passed over."""
    names = model.names
    bad = [name for name in names if any(c in name for c in _CSV_UNSAFE)]
    if bad:
        raise ValueError(f"feature name {bad[0]!r} cannot be a column of plain CSV")
    lines: dict[int, str] = {}
    for index, row in enumerate(zip(*columns, strict=True)):
        fields = [_csv_field(spec, value) for spec, value in zip(model.inputs, row, strict=True)]
        if all(field is not None for field in fields):
            lines[index] = ",".join(fields)  # type: ignore[arg-type]
    # Ties (and the last bits a machine's libm may round differently) are ordered by row.
    order = sorted(lines, key=lambda i: (round(float(scores[i]), 12), i))
    if len(order) > count:
        last = len(order) - 1
        order = [order[k * last // max(count - 1, 1)] for k in range(count)]
    return "\n".join([",".join(names), *(lines[i] for i in order)]) + "\n"


_JS_CODE = r"""
const missingNumber = (v) => v === null || v === undefined || v === "" || Number.isNaN(v);

function find(f, s) {
  let lo = T.catOff[f], hi = T.catOff[f + 1] - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1, m = T.catStr[mid];
    if (m === s) return mid;
    if (m < s) lo = mid + 1; else hi = mid - 1;
  }
  return -1;
}

/** One raw value (null/undefined/"" = missing) -> the encoded value of feature f. */
export function encode(f, value) {
  if (T.kind[f] === 1) {
    if (value === null || value === undefined || value === "") return T.missing[f];
    const i = find(f, String(value));
    return i < 0 ? T.unknown[f] : T.catVal[i];
  }
  let x = missingNumber(value) ? NaN : Number(value);
  if (Number.isNaN(x) && !Number.isNaN(T.fill[f])) x = T.fill[f];
  return T.f32[f] ? Math.fround(x) : x;
}
"""

_JS_TREES = r"""
function scoreEncoded(x) {
  const bins = new Array(x.length);
  for (let f = 0; f < x.length; f++) {
    if (Number.isNaN(x[f])) { bins[f] = -1; continue; }
    if (M.isCat[f]) { bins[f] = x[f] | 0; continue; }
    let lo = M.thrOff[f], hi = M.thrOff[f + 1];
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (M.thr[mid] < x[f]) lo = mid + 1; else hi = mid;
    }
    bins[f] = lo - M.thrOff[f];
  }
  let z = M.base;
  for (let t = 0; t < M.roots.length; t++) {
    let n = M.roots[t];
    while (M.flags[n] & 1) {
      const b = bins[M.feature[n]];
      let left;
      if (b < 0) left = (M.flags[n] >> 2) & 1;
      else if (M.flags[n] & 2)
        left = b < 256 && ((M.bitsets[M.split[n] * 32 + (b >> 3)] >> (b & 7)) & 1);
      else left = b <= M.split[n];
      n = left ? M.left[n] : M.right[n];
    }
    z += M.value[n];
  }
  return M.mean ? z / M.roots.length : 1 / (1 + Math.exp(-z));
}
"""

_JS_LINEAR = r"""
function scoreEncoded(x) {
  let z = 0;
  for (let f = 0; f < x.length; f++)
    z += Number.isNaN(x[f]) ? M.missingTerm[f] : x[f] * M.slope[f] + M.offset[f];
  return 1 / (1 + Math.exp(-(z + M.intercept)));
}
"""

_JS_API = r"""
/** row: {feature name: number | string | null}; absent or null = missing. */
export function score(row) {
  return scoreEncoded(FEATURES.map((name, f) => encode(f, row[name])));
}

export function decide(scoreValue) {
  return scoreValue >= THRESHOLD;
}
"""


def _js(value: object) -> str:
    if isinstance(value, float):
        return _num(value, "NaN")
    if isinstance(value, list):
        return "[" + ",".join(_js(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def _js_object(name: str, fields: dict[str, object]) -> str:
    body = ",\n".join(f"  {k}: {_js(v)}" for k, v in fields.items())
    return f"const {name} = {{\n{body}\n}};\n"


def js_module(model: ExportModel, binned: BinnedTrees | None, threshold: float) -> str:
    t = _tables(model)
    out = [
        f"// Generated by mlgitops from a {model.model_type} pipeline. Do not edit.\n",
        f"export const FEATURES = {_js(model.names)};\n",
        f"export const THRESHOLD = {decision_threshold(threshold)!r};\n",
        _js_object(
            "T",
            {
                "kind": t["kind"],
                "fill": [float(v) for v in t["fill"]],
                "f32": t["f32"],
                "catOff": t["cat_off"],
                "catStr": t["cat_str"],
                "catVal": [float(v) for v in t["cat_val"]],
                "unknown": [float(v) for v in t["unknown"]],
                "missing": [float(v) for v in t["missing"]],
            },
        ),
        _JS_CODE,
    ]
    if binned is not None:
        tt = _tree_tables(binned)
        fields: dict[str, object] = {
            "thr": [float(v) for v in tt["thr"]],
            "thrOff": tt["thr_off"],
            "isCat": tt["is_cat"],
            "feature": tt["feature"],
            "split": tt["split"],
            "flags": tt["flags"],
            "left": tt["left"],
            "right": tt["right"],
            "value": tt["value"],
            "roots": tt["roots"],
            "bitsets": tt["bitsets"],
            "base": float(binned.trees.base),
            "mean": binned.trees.aggregate == "mean",
        }
        out += [_js_object("M", fields), _JS_TREES]
    else:
        linear = model.model
        assert isinstance(linear, Linear)
        fields = {
            "slope": [float(v) for v in linear.slope],
            "offset": [float(v) for v in linear.offset],
            "missingTerm": [float(v) for v in linear.missing_term],
            "intercept": float(linear.intercept),
        }
        out += [_js_object("M", fields), _JS_LINEAR]
    out.append(_JS_API)
    return "".join(out)
