"""Guards for untrusted dataset files: where an image name may point, and how big an image may be.

Image size convention (one for the whole package): COCO ``width``/``height`` and VOC ``<size>``
describe the image *as displayed*, i.e. after its EXIF orientation is applied. ``read_rgb``
applies the orientation (as detectron2 does), the datasets compare against the displayed size,
``tools/check_dataset.py`` reports files whose displayed size disagrees, and ``tools/infer.py``
returns boxes in displayed pixels. Files whose json was written from the stored (unrotated)
size show up as size mismatches instead of silently getting misplaced boxes.
"""
from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

# A decoded image costs 3 bytes per pixel plus augmentation copies; above ~100 Mpx one sample
# can take gigabytes, so larger sizes (in the file header or in the json) are bad data.
MAX_IMAGE_PIXELS = 100_000_000
EXIF_ORIENTATION = 0x0112
TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)  # width and height swap when displayed


def unsafe_file_name(root: str | os.PathLike, name: str) -> str | None:
    """Why ``name`` (from an annotation file) must not be opened below ``root``, or None if it is safe.

    Annotation files come from elsewhere; without this, ``../../home/me/.ssh/id_rsa`` or a
    symlink planted in the image folder would be read (and possibly drawn into outputs).
    """
    path = Path(name)
    if path.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return f"file name {name!r} is absolute; it must be relative to the image folder {root}"
    if ".." in path.parts or ".." in Path(name.replace("\\", "/")).parts:
        return f"file name {name!r} contains '..'; it must stay inside the image folder {root}"
    resolved = (Path(root) / path).resolve()
    if not resolved.is_relative_to(Path(root).resolve()):
        return f"file name {name!r} resolves to {resolved}, outside the image folder {root} (symlink?)"
    return None


def too_many_pixels(h: int, w: int) -> bool:
    return h * w > MAX_IMAGE_PIXELS


def pixel_limit_message(h: int, w: int) -> str:
    return (f"{w}x{h} = {w * h} pixels exceeds the limit of {MAX_IMAGE_PIXELS} "
            f"(detseg.data.safety.MAX_IMAGE_PIXELS); treated as bad data (decompression bomb?)")


def displayed_size(img: Image.Image) -> tuple[int, int]:
    """(h, w) of an opened image after its EXIF orientation, from the header only."""
    w, h = img.size
    return (w, h) if exif_orientation(img) in TRANSPOSED_ORIENTATIONS else (h, w)


def exif_orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(EXIF_ORIENTATION, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block is treated as "no orientation"
        return 1
