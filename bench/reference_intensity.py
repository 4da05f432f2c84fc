#!/usr/bin/python3
"""nibabel + numpy reference for per-label intensity statistics: what a user
does today after downloading both volumes. Loads the label map and the image
(get_fdata: float64 scaled values), then per label id present the same
statistics medimg answers (`/labels?image=`, `medimg labels --image`):
mean, population sd, min, max and numpy's method="lower" 5/50/95th
percentiles. Prints the JSON {"id": {...}} on stdout, so bench/intensity.sh
can compare it with medimg's answer.

usage: reference_intensity.py LABELS IMAGE
"""
import json
import sys

import nibabel as nib
import numpy as np


def main():
    seg = np.asarray(nib.load(sys.argv[1]).dataobj)
    img = nib.load(sys.argv[2]).get_fdata()
    flat_seg = seg.ravel()
    flat_img = img.ravel()
    order = np.argsort(flat_seg, kind="stable")
    ids, starts = np.unique(flat_seg[order], return_index=True)
    ends = list(starts[1:]) + [flat_seg.size]
    out = {}
    for i, a, b in zip(ids, starts, ends):
        if i == 0:
            continue
        v = flat_img[order[a:b]]
        v = v[np.isfinite(v)]
        out[str(int(i))] = {
            "mean": float(v.mean()), "sd": float(v.std()),
            "min": float(v.min()), "max": float(v.max()),
            **{f"p{q:02d}": float(np.percentile(v, q, method="lower")) for q in (5, 50, 95)},
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
