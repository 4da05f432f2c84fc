#!/usr/bin/python3
"""nibabel + numpy reference for `medimg filter` (run with /usr/bin/python3).

Variants:
  old   what the replaced Python server did: get_fdata() (float64), np.isin,
        np.where, then a new Nifti1Image from the float64 array with the
        input's header, so nibabel saves it through the integer datatype with
        a computed scl_slope/scl_inter (which is why ids came back inexact).
  int   a fairer variant that keeps the stored integers:
        np.asanyarray(img.dataobj), np.isin, np.where, same dtype, same header.

Saves .nii.gz at nibabel's default gzip level. Prints one tab-separated line:
  variant  load_s  filter_s  save_s  total_s  out_bytes  maxrss_kib
(times measured inside the process, after `import nibabel`; maxrss of the
whole process).
"""
import argparse
import os
import resource
import sys
import time

import nibabel as nib
import numpy as np


def parse_ids(text):
    ids = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        if "-" in part[1:]:
            cut = part.index("-", 1)
            lo, hi = int(part[:cut]), int(part[cut + 1:])
            ids.extend(range(lo, hi + 1))
        else:
            ids.append(int(part))
    return ids


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--labels", required=True, help="comma-separated ids and ranges, e.g. 1,5,10-12")
    ap.add_argument("--variant", choices=("old", "int"), default="old")
    args = ap.parse_args()
    ids = parse_ids(args.labels)

    t0 = time.perf_counter()
    img = nib.load(args.input)
    if args.variant == "old":
        data = img.get_fdata()
    else:
        data = np.asanyarray(img.dataobj)
    t1 = time.perf_counter()

    mask = np.isin(data, ids)
    filtered = np.where(mask, data, 0)
    if args.variant == "int":
        filtered = filtered.astype(data.dtype, copy=False)
    t2 = time.perf_counter()

    if args.variant == "old":
        # As the old server: float64 data, the input's header (integer dtype).
        out = nib.Nifti1Image(filtered, img.affine, img.header)
    else:
        out = nib.Nifti1Image(filtered, img.affine, img.header)
        out.header.set_data_dtype(data.dtype)
        # Stored integers are written as they are: no rescale.
        out.header.set_slope_inter(*img.header.get_slope_inter())
    nib.save(out, args.output)
    t3 = time.perf_counter()

    size = os.path.getsize(args.output)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{args.variant}\t{t1 - t0:.4f}\t{t2 - t1:.4f}\t{t3 - t2:.4f}\t{t3 - t0:.4f}\t{size}\t{rss}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
