"""Label remapping (`map=`, `--map`) cases shared by the CLI and HTTP suites:
a label volume in every integer datatype, the rules, the expected voxels by
np.select over the same rules, and the output datatype README.md names
(found by brute force over the ids, independently of the C++ planner)."""
import numpy as np

INT_DTYPES = ["uint8", "int8", "int16", "uint16", "int32", "uint32", "int64", "uint64"]

# (label_ids or None, map, what it exercises)
CASES = [
    (None, "28-32:2,6:1", "sources select, new ids fit"),
    ("1-7,100", "1-3:300", "uint8/int8 widen to int16, ids 4-7 and 100 kept"),
    (None, "1:300,2-3:-2", "widening and negative new ids"),
    ("1-100", "100:-1,28-32:0", "negative new id next to kept ids"),
    ("1-3,5-7", "5-7:1,1-3:1", "binary map"),
]


def volume(dtype, shape=(13, 11, 7), seed=11):
    """Reproducible blocky labels whose ids fit every integer datatype."""
    rng = np.random.default_rng(seed)
    ids = np.array([0, 0, 0, 1, 2, 3, 5, 6, 7, 28, 30, 32, 100])
    d = rng.choice(ids, size=shape)
    d[:2] = 0
    d[..., -1] = 0
    return d.astype(dtype)


def _ranges(text):
    out = []
    for item in text.replace(" ", "").split(","):
        if not item:
            continue
        if "-" in item[1:]:
            i = item.index("-", 1)
            out.append((int(item[:i]), int(item[i + 1:])))
        else:
            out.append((int(item), int(item)))
    return out


def rules_of(map_text):
    """[(first, last, new_id)]: the rules of a map text."""
    rules = []
    for item in map_text.replace(" ", "").split(","):
        src, to = item.rsplit(":", 1)
        (a, b), = _ranges(src)
        rules.append((a, b, int(to)))
    return rules


def selection(label_ids, map_text):
    """[(first, last)]: label_ids, or the map's sources without them."""
    if label_ids is None:
        return [(a, b) for a, b, _ in rules_of(map_text)]
    return _ranges(label_ids)


def in_ranges(values, ranges):
    hit = np.zeros(values.shape, dtype=bool)
    for a, b in ranges:
        hit |= (values >= a) & (values <= b)
    return hit


def expected(data, label_ids, map_text, mode="keep"):
    """np.select over the rules inside the selection, 0 elsewhere (as int64)."""
    d = data.astype(np.int64)
    sel = in_ranges(d, selection(label_ids, map_text))
    if mode == "mask":
        return sel.astype(np.uint8)
    rules = rules_of(map_text)
    mapped = np.select([(d >= a) & (d <= b) for a, b, _ in rules],
                       [np.int64(to) for _, _, to in rules], default=d)
    return np.where(sel, mapped, 0)


def expected_dtype(dtype, label_ids, map_text):
    """The input's datatype when every new id a selectable voxel can get fits
    it, else the narrowest signed integer type holding every output id."""
    info = np.iinfo(dtype)
    ids = np.arange(-70000, 70001, dtype=np.int64)
    ids = ids[in_ranges(ids, selection(label_ids, map_text)) & (ids >= max(info.min, -70000))
              & (ids <= min(info.max, 70000))]
    rules = rules_of(map_text)
    matched = np.zeros(ids.shape, dtype=bool)
    out = ids.copy()
    for a, b, to in rules:
        m = (ids >= a) & (ids <= b)
        matched |= m
        out[m] = to
    new = out[matched]
    if new.size == 0 or (new.min() >= info.min and new.max() <= info.max):
        return np.dtype(dtype)
    lo, hi = min(0, out.min()), max(0, out.max())
    for t in ("int8", "int16", "int32", "int64"):
        if np.iinfo(t).min <= lo and hi <= np.iinfo(t).max:
            return np.dtype(t)
    raise AssertionError("no signed type")


def crop_box(mask):
    """Slices of the bounding box of a boolean volume (1x1x1 when empty)."""
    if not mask.any():
        return (slice(0, 1),) * 3
    idx = np.nonzero(mask)
    return tuple(slice(int(i.min()), int(i.max()) + 1) for i in idx)
