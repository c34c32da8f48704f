"""Template sets for the image-like model: IDX (MNIST / Fashion-MNIST) and NumPy files,
seeded selection, bicubic resizing, min-max normalization, and the shipped default set.

The default set (``gmmdiff/assets/default_templates.npy``, 8 x 28 x 28 uint8) is drawn
by :func:`draw_default_templates` in this module -- simple clothing-like silhouettes
(shirt, trousers, dress, bag, shoe, coat, sneaker, hat), our own work under the
package's MIT licence, so that nothing is downloaded at run time. Any Fashion-MNIST or
MNIST IDX file given by path can replace it.
"""
import math
import os
import struct
import zlib

import numpy as np
from scipy import ndimage

from gmmdiff.io.files import StorageError, check_regular_file, read_npy, read_npz
from gmmdiff.model.data import check_positive_int
from gmmdiff.streams import STREAM_TEMPLATE_PICK, rng_for

DEFAULT_TEMPLATES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets",
                                 "default_templates.npy")
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class TemplateFileError(ValueError):
    """A missing, truncated or malformed template file (the message names it)."""


MAX_TEMPLATE_BYTES = 1 << 30       # uncompressed; Fashion-MNIST's training set is 47 MB


def _regular(path):
    try:
        check_regular_file(path, "template file")
    except StorageError as exc:
        raise TemplateFileError(str(exc)) from None


def _gunzip(raw, path):
    """Decompress gzip data ``raw``, refusing output beyond MAX_TEMPLATE_BYTES (a
    damaged or malicious file must not exhaust memory) and corrupt data."""
    d = zlib.decompressobj(wbits=31)
    try:
        out = d.decompress(raw, MAX_TEMPLATE_BYTES + 1)
    except zlib.error as exc:
        raise TemplateFileError(f"{path}: corrupt gzip data ({exc})") from None
    if len(out) > MAX_TEMPLATE_BYTES:
        raise TemplateFileError(f"{path}: decompresses to more than {MAX_TEMPLATE_BYTES >> 20} "
                                "MiB; not a template file")
    if not d.eof:
        raise TemplateFileError(f"{path}: corrupt gzip data (truncated)")
    return out


def read_idx(path):
    """Read an IDX file (optionally gzipped) into a numpy array of its declared shape."""
    _regular(path)
    try:
        if os.path.getsize(path) > MAX_TEMPLATE_BYTES:
            raise TemplateFileError(f"{path} is larger than {MAX_TEMPLATE_BYTES >> 20} MiB; not "
                                    "a template file")
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise TemplateFileError(f"cannot read template file {path}: {exc.strerror}") from None
    if raw[:2] == b"\x1f\x8b":
        raw = _gunzip(raw, path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise TemplateFileError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise TemplateFileError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    need = math.prod(shape) * dtype.itemsize
    if len(raw) - header != need:
        raise TemplateFileError(f"{path}: IDX data holds {len(raw) - header} bytes, its header "
                                f"declares {need} (truncated or corrupt)")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path, array):
    """Write a uint8 array as an (uncompressed) IDX file (used by tests and tools)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    with open(path, "wb") as fh:
        fh.write(bytes([0, 0, 0x08, array.ndim]))
        fh.write(struct.pack(f">{array.ndim}I", *array.shape))
        fh.write(array.tobytes())


def read_images(path=None):
    """Images (n, H, W) from an IDX, .npy or .npz file (default: the shipped set)."""
    path = path or DEFAULT_TEMPLATES
    if path.endswith((".npy", ".npz")):
        _regular(path)
        try:       # headers checked before any allocation; never a pickle
            data = (read_npy(path, "template file") if path.endswith(".npy") else
                    read_npz(path, "template file"))
        except StorageError as exc:
            raise TemplateFileError(str(exc)) from None
        if isinstance(data, dict):
            if not data:
                raise TemplateFileError(f"{path} holds no arrays")
            data = next(iter(data.values()))
    else:
        data = read_idx(path)
    if data.ndim != 3 or min(data.shape) < 1:
        raise TemplateFileError(f"{path}: expected images of shape (n, H, W); got {data.shape}")
    if data.dtype.kind not in "biuf":
        raise TemplateFileError(f"{path}: expected numeric images; got dtype {data.dtype}")
    data = np.asarray(data, dtype=np.float64)
    if not np.all(np.isfinite(data)):
        raise TemplateFileError(f"{path}: the images hold NaN or infinite values")
    return data


def load_templates(path=None, K=8, size=15, seed=0):
    """K templates (K, size * size), seeded choice among the file's images, bicubic
    resize to size x size, min-max normalized to [0, 1] over the chosen set."""
    K = check_positive_int("templates", K)
    size = check_positive_int("image size", size, minimum=2)
    images = read_images(path)
    if K > images.shape[0]:
        raise ValueError(f"asked for K = {K} templates but {path or 'the default set'} holds "
                         f"{images.shape[0]} images")
    pick = np.sort(rng_for(seed, STREAM_TEMPLATE_PICK).choice(images.shape[0], size=K, replace=False))
    chosen = images[pick]
    H, W = chosen.shape[1:]
    out = np.stack([ndimage.zoom(im, (size / H, size / W), order=3) for im in chosen])
    lo, hi = out.min(), out.max()
    if hi - lo <= 1e-9 * max(1.0, abs(hi)):      # resizing leaves rounding on a constant set
        raise TemplateFileError(f"{path or 'the default set'}: the chosen templates are constant")
    return ((out - lo) / (hi - lo)).reshape(K, size * size)


def draw_default_templates(size=28):
    """The shipped default set: 8 silhouettes (8, size, size) uint8, drawn procedurally."""
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)                      # in [0, 1]
    rect = lambda x0, x1, y0, y1: (xx >= x0) & (xx <= x1) & (yy >= y0) & (yy <= y1)  # noqa: E731
    ell = lambda cx, cy, rx, ry: ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1  # noqa: E731
    shirt = rect(.3, .7, .2, .9) | rect(.1, .9, .2, .4)
    trousers = rect(.3, .48, .1, .95) | rect(.52, .7, .1, .95) | rect(.3, .7, .1, .3)
    dress = (np.abs(xx - .5) <= .12 + .3 * yy) & (yy >= .1) & (yy <= .95)
    bag = rect(.15, .85, .4, .9) | (ell(.5, .4, .2, .2) & ~ell(.5, .4, .13, .13) & (yy <= .4))
    shoe = rect(.1, .9, .6, .8) | rect(.1, .45, .35, .8)
    coat = rect(.25, .75, .1, .95) | rect(.05, .95, .1, .3) | rect(.05, .2, .1, .8) | rect(.8, .95, .1, .8)
    sneaker = ell(.55, .7, .4, .12) | rect(.15, .5, .45, .7)
    hat = ell(.5, .65, .45, .1) | (ell(.5, .55, .25, .3) & (yy <= .6))
    shapes = [shirt, trousers, dress, bag, shoe, coat, sneaker, hat]
    shade = 0.55 + 0.45 * (1 - yy)                                      # vertical shading
    return np.stack([np.round(255 * s * shade).astype(np.uint8) for s in shapes])
