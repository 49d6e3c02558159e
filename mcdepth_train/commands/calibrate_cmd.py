"""``mcdepth-train calibrate``: camera intrinsics and distortion from chessboard images (OpenCV).

Writes the intrinsics YAML that the folder/video source reads (``data.intrinsics_file``), which then
undistorts the frames. Prints the RMS reprojection error and which images had a board.
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--chessboard", required=True, metavar="DIR", help="folder of chessboard images (one camera, one size)")
    parser.add_argument("--pattern", required=True, metavar="COLSxROWS", help="inner corners per row x per column, e.g. 9x6")
    parser.add_argument("--square", type=float, default=1.0, metavar="M",
                        help="square side in metres (only the board poses depend on it; intrinsics do not)")
    parser.add_argument("--out", required=True, metavar="FILE.yaml", help="intrinsics YAML to write")
    parser.add_argument("--max-images", type=int, default=0, help="use at most this many images, evenly spaced (0 = all)")


def run(args: argparse.Namespace) -> int:
    from ..data.calibration import calibrate_chessboards, parse_pattern, write_intrinsics_yaml

    pattern = parse_pattern(args.pattern)
    cal = calibrate_chessboards(args.chessboard, pattern, args.square, args.max_images)
    path = write_intrinsics_yaml(args.out, cal, pattern, args.square)
    K = cal.K
    print(f"calibrate: {len(cal.used)} boards used of {len(cal.used) + len(cal.not_found) + len(cal.other_size)} images "
          f"({cal.width}x{cal.height}); RMS reprojection error {cal.rms_px:.3f} px")
    print(f"calibrate: fx {K[0, 0]:.1f}  fy {K[1, 1]:.1f}  cx {K[0, 2]:.1f}  cy {K[1, 2]:.1f}  "
          f"distortion (k1 k2 p1 p2 k3) {' '.join(f'{x:.4f}' for x in cal.distortion)}")
    if cal.not_found:
        print(f"calibrate: no board found in {', '.join(cal.not_found)}")
    if cal.other_size:
        print(f"calibrate: left out (another image size): {', '.join(cal.other_size)}")
    print(f"calibrate: wrote {path} (use data.intrinsics_file={path})")
    return 0
