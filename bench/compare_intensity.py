#!/usr/bin/python3
"""Compares medimg's /labels?image= JSON (file 1) with
reference_intensity.py's output (file 2): mean and sd within 1e-6 relative,
min, max and percentiles equal (integer images). Exit 1 on any difference."""
import json
import sys


def main():
    ours = {str(l["id"]): l["intensity"] for l in json.load(open(sys.argv[1]))["labels"]}
    ref = json.load(open(sys.argv[2]))
    bad = []
    if sorted(ours) != sorted(ref):
        bad.append(f"ids differ: {sorted(ours)} vs {sorted(ref)}")
    for i in sorted(set(ours) & set(ref)):
        for k, want in ref[i].items():
            got = ours[i][k]
            ok = abs(got - want) <= 1e-6 * abs(want) + 1e-9 if k in ("mean", "sd") else got == want
            if not ok:
                bad.append(f"label {i} {k}: {got} vs {want}")
    print(f"{len(ref)} labels compared, {len(bad)} differences")
    for b in bad[:20]:
        print(b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
