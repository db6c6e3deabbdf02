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
VALID_ORIENTATIONS = range(1, 9)  # the EXIF standard's eight; anything else (0, 65537, ...) is ignored


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
    """The orientation that is applied when the image is read: 1 (as stored) when absent or invalid."""
    raw = raw_exif_orientation(img)
    return raw if raw in VALID_ORIENTATIONS else 1


def raw_exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation value as written in the file (1 when absent or unreadable)."""
    try:
        return int(img.getexif().get(EXIF_ORIENTATION, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block is treated as "no orientation"
        return 1


def orientation_note(img: Image.Image) -> tuple[str, str] | None:
    """(warning kind, text) when reading the image turns it by its EXIF orientation, or ignores an
    invalid one (PIL's exif_transpose does nothing for values outside 1-8, and neither do we)."""
    raw = raw_exif_orientation(img)
    if raw == 1:
        return None
    if raw not in VALID_ORIENTATIONS:
        return ("exif_orientation_invalid",
                f"has EXIF orientation {raw}, not a valid value (1-8); ignored: the image is used as stored")
    return ("exif_orientation",
            f"has EXIF orientation {raw}; it is applied when reading, boxes refer to the displayed image")
