#!/usr/bin/python3
"""Writes a uint8 copy of an integer label map (run with /usr/bin/python3).

usage: make_uint8.py IN.nii.gz OUT.nii.gz

The stored values must fit 0..255 and the input must be unscaled; the header
(affine, codes, pixdim, description) is kept, only the datatype changes.
Saved at nibabel's default gzip level, as the int16 maps are.
"""
import sys

import nibabel as nib
import numpy as np


def main():
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    img = nib.load(sys.argv[1])
    slope, inter = img.header.get_slope_inter()
    if slope not in (None, 1.0) or inter not in (None, 0.0):
        sys.stderr.write("make_uint8: input is scaled\n")
        return 1
    data = np.asanyarray(img.dataobj)
    if data.size and (data.min() < 0 or data.max() > 255):
        sys.stderr.write(f"make_uint8: values {data.min()}..{data.max()} do not fit uint8\n")
        return 1
    out = nib.Nifti1Image(data.astype(np.uint8), img.affine, img.header)
    out.header.set_data_dtype(np.uint8)
    out.header.set_slope_inter(1.0, 0.0)
    nib.save(out, sys.argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
