"""Writes a small atlas image as an MRC file (what an EPU session leaves
under /dls), so the API has a real file to render."""

import sys

import mrcfile
import numpy as np

data = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
with mrcfile.new(sys.argv[1], overwrite=True) as mrc:
    mrc.set_data(data)
