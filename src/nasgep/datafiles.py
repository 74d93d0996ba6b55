"""Which files of a dataset on disk are its images, a cheap fingerprint of them, and the
error a dataset that cannot be loaded raises (:class:`DataError`).

Torch-free (a search's settings are checked before torch is imported): :mod:`nasgep.data`
scans class folders with the same rule, and searches and trainings record
:func:`files_fingerprint` in ``settings.json`` so that a resume on other data is refused.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from .errors import UserError
from .io import broken_link


class DataError(UserError):
    """A dataset that cannot be loaded or cannot be meant; the message says which file
    and what to do."""

    @classmethod
    def from_worker(cls, error: DataError) -> DataError:
        """The one-line error a DataLoader worker raised: torch re-raises it in the main
        process as ``DataError("Caught DataError in DataLoader worker ...<traceback>")``."""
        text = str(error)
        if not text.startswith("Caught "):
            return error
        marker = f"{cls.__module__}.{cls.__name__}: "
        last = [line for line in text.splitlines() if line.startswith(marker)]
        return cls(last[-1][len(marker):]) if last else cls(text.splitlines()[-1])


#: a dataset entry's keys that shape no result: its name in tables, where its files lie
#: and whether they may be downloaded (the files themselves are fingerprinted:
#: :func:`files_fingerprint`), so a moved data folder leaves every run current
NOT_SHAPING: tuple[str, ...] = ("label", "path", "download")
#: keys that shape only the search's validation split and the test set, not the weights
#: of a full training (it trains on every training image)
NOT_SHAPING_TRAINING: tuple[str, ...] = ("val_size", "val_fraction", "val_labels")


def data_settings(entry: Mapping, training: bool = False) -> dict:
    """The keys of a dataset entry that shape a search's result (``training``: a full
    training's weights), as its ``settings.json`` records them under ``data``."""
    drop = NOT_SHAPING + (NOT_SHAPING_TRAINING if training else ())
    return {k: v for k, v in entry.items() if k not in drop}


#: The arrays of an .npz dataset file.
NPZ_KEYS: tuple[str, ...] = ("x_train", "y_train", "x_test", "y_test")

#: The layout a folder dataset must have, said when it is not met.
FOLDER_LAYOUT = ("{root}/train/<class>/<image> (one sub-folder per class, e.g. ImageNet's wnids n01440764 ...) "
                 "and {root}/val/<class>/<image> with the same classes, or a flat {root}/val/<image> with a "
                 "labels file (dataset key val_labels, or one of {files} in {root}): lines "
                 "'<image file or id> <class name or index>', comma-, tab- or space-separated (names with spaces: "
                 "comma- or tab-separated)")
#: Labels files of a flat val/ folder, looked for in this order when ``val_labels`` is unset:
#: a generic list, Kaggle's ImageNet solution file, Tiny ImageNet's annotations.
VAL_LABEL_FILES: tuple[str, ...] = ("val_labels.txt", "LOC_val_solution.csv", "val/val_annotations.txt")


def require_path(entry: Mapping) -> None:
    """The loader's one line for an .npz or folder dataset whose file or train/ folder is not
    there (a search checks it before it claims its folder: a missing file is no changed data)."""
    if entry["kind"] not in ("npz", "folder") or not entry.get("path"):
        return
    path = Path(entry["path"])
    what = "the dataset's .npz file" if entry["kind"] == "npz" else "the dataset's folder"
    broken = broken_link(path)
    if broken is not None:
        raise DataError(f"{broken} ({what})")
    if entry["kind"] == "npz" and not path.is_file() and not path.is_dir():
        if os.path.exists(path):        # /dev/zero, a pipe: np.load would read it forever, or hang
            raise DataError(f"{path}: not a regular file (a device, a pipe or a socket), so no .npz file; name "
                            f"the .npz file (keys {', '.join(NPZ_KEYS)}; uint8 images N,H,W,C)")
        raise DataError(f"{path}: no such .npz file{_from_here(path)} (keys {', '.join(NPZ_KEYS)}; uint8 images "
                        "N,H,W,C)")
    if entry["kind"] == "folder" and os.path.exists(path) and not path.is_dir():
        raise layout_error(path, f"{path}: not a folder")
    if entry["kind"] == "folder" and not (path / "train").is_dir():
        raise layout_error(path, f"{path / 'train'}: no such folder{_from_here(path)}")


def _from_here(path: Path) -> str:
    """Where a relative dataset path was looked for: the folder nasgep runs in, not the
    config's (``path: ../imgs`` said '../imgs/train: no such folder' and no more)."""
    return "" if path.is_absolute() else f" (relative to the current folder, {os.getcwd()})"


def layout_error(root: Path, what: str) -> DataError:
    layout = FOLDER_LAYOUT.format(root=root, files=", ".join(VAL_LABEL_FILES))
    return DataError(f"{what}; a folder dataset is {layout}")


#: torchvision's ``IMG_EXTENSIONS`` (importing it would import torch; a test keeps the
#: two equal): the files of a class folder that are images.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def hidden(name: str) -> bool:
    """A hidden file or folder (``.ipynb_checkpoints``, macOS's ``._x.png``, ``.DS_Store``):
    never a class, never an image."""
    return name.startswith(".")


def is_image_name(name: str) -> bool:
    return not hidden(name) and name.lower().endswith(IMAGE_EXTENSIONS)


def class_folders(root: Path) -> list[str]:
    """The class folders of ``root``, sorted (hidden ones left out)."""
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not hidden(p.name))


def image_listing(folder: Path) -> list[tuple[str, list[str]]]:
    """``[(directory, sorted image names)]`` under ``folder`` (recursively, hidden folders
    skipped), in torchvision's ``make_dataset`` order (directories sorted by path)."""
    walked = []
    top = os.path.realpath(folder)
    for here, dirs, files in os.walk(folder, followlinks=True, onerror=_unlistable):
        dirs[:] = [d for d in dirs if not hidden(d)]
        for d in dirs:
            _refuse_a_loop(os.path.join(here, d), top)
        walked.append((here, sorted(name for name in files if is_image_name(name))))
    return sorted(walked)


def _unlistable(error: OSError) -> None:
    """A folder of the dataset that cannot be listed: os.walk skipped it without a word, so
    its images were missing (a class 'without images', or, in the fingerprint, changed data,
    for which the workflow moved a finished search aside)."""
    raise _not_listed(error.filename, error)


def _not_listed(path, error: OSError) -> DataError:
    return DataError(f"{path}: cannot be listed ({error.strerror or error}); check its permissions and the disk "
                     "it lies on")


def _refuse_a_loop(path: str, top: str) -> None:
    """Links are followed (a class folder on another disk), but not one that leads back
    into the folder being listed or above it: its images would be counted again, under this
    class, through up to 40 levels of links."""
    if not os.path.islink(path):
        return
    target = os.path.realpath(path)
    if target == top or target.startswith(top + os.sep) or top.startswith(target + os.sep):
        raise DataError(f"{path}: a link back to {target}, which the dataset lists already (its images "
                        "would be counted again); remove the link")


def open_image(path: str | Path):
    """``PIL.Image.open(path)`` of a regular file: a pipe or device named like an image
    (``train/a/pipe.png``) blocked the reader for good; it is an unreadable image instead."""
    import stat

    from PIL import Image

    if not stat.S_ISREG(os.stat(path).st_mode):
        raise OSError(f"not a regular file (a pipe, socket or device): {path}")
    return Image.open(path)


def image_files(folder: Path) -> Iterable[str]:
    """Paths of the images under ``folder``, in :func:`image_listing`'s order."""
    for here, names in image_listing(folder):
        for name in names:
            yield os.path.join(here, name)


#: Images of a folder dataset whose header (size, colour mode) is read to choose its image
#: size and its channels: PIL reads only the header, so this costs the same for ImageNet.
HEADER_SAMPLE = 50
#: PIL modes of grey images (8-bit, 16- and 32-bit integer, float, 1-bit, grey + alpha).
GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def sample_headers(paths: Sequence[str], limit: int = HEADER_SAMPLE) -> list[tuple[str, tuple[int, int], str]]:
    """``(path, (width, height), PIL mode)`` of up to ``limit`` images spread evenly over
    ``paths`` (so every class folder of a sorted listing is seen), the first one first;
    files whose header cannot be read are left out (the loader names them when it
    decodes them)."""
    from PIL import Image

    k = min(limit, len(paths))
    found = []
    for i in range(k):
        path = paths[i * len(paths) // k]
        try:
            with open_image(path) as image:
                found.append((path, image.size, image.mode))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            continue
    return found


def all_grey(headers: Sequence[tuple[str, tuple[int, int], str]]) -> bool:
    """Whether every sampled image (:func:`sample_headers`) is grey: a folder dataset is
    then loaded with one channel, like a grey .npz (docs/decisions.md)."""
    return bool(headers) and all(mode in GREY_MODES for _, _, mode in headers)


#: a ``files`` argument's default where a caller may pass the fingerprint it listed already:
#: list the dataset's files now (None means: not on this machine)
LIST_FILES = object()


def files_fingerprint(entry: Mapping, parts: tuple[str, ...] = ("train",)) -> dict | None:
    """What a folder or .npz dataset's files hold, recorded with a search (``parts``
    train) or a training (train and val): an .npz file's size and sha256; a folder's
    class folders and their images' relative paths (listed, nothing decoded), so a file
    the loader never reads (a ``Thumbs.db``) changes nothing, with (read from a sample of
    headers) its channels when grey and, when ``image_size`` is unset, the size its images
    are resized to. None for the built-in
    datasets (torchvision checks CIFAR's checksums) and for paths that do not exist
    (loading them fails with its own message); a folder that cannot be listed is a
    :class:`DataError`."""
    return files_fingerprints(entry, parts)[-1]


def required_fingerprints(entry: Mapping, parts: tuple[str, ...] = ("train",)) -> list[dict | None]:
    """:func:`files_fingerprints` of a dataset whose files must be there: :func:`require_path`
    first, so a missing .npz file or train/ folder is its one line, not a fingerprint of
    None (a search and a sample check it before they claim their folder: a missing file is
    no changed setting)."""
    require_path(entry)
    return files_fingerprints(entry, parts)


def files_fingerprints(entry: Mapping, parts: tuple[str, ...]) -> list[dict | None]:
    """:func:`files_fingerprint` of ``parts[:1]``, ``parts[:2]``, ... from one listing of
    the files (a training records its training images alone and with its test images)."""
    path = Path(entry["path"]) if entry.get("path") else None
    if entry["kind"] == "npz" and path is not None and path.is_file():
        with path.open("rb") as f:
            whole = {"bytes": path.stat().st_size, "sha256": hashlib.file_digest(f, "sha256").hexdigest()}
        return [whole] * len(parts)
    if entry["kind"] != "folder" or path is None or not path.is_dir():
        return [None] * len(parts)
    digest = hashlib.sha256()
    classes = images = 0
    train: list[str] = []       # the training images, in the loader's order
    found = []                  # (classes, images, sha256) after each part
    try:
        for part in parts:
            folder = path / part
            if folder.is_dir():
                names = class_folders(folder)
                classes += len(names) if part == "train" else 0
                for name in names or [""]:          # a flat val/ with a labels file: its images
                    listing = image_listing(folder / name) if name else [(str(folder), _flat_images(folder))]
                    for here, files in listing:
                        text = "\n".join([os.path.relpath(here, path), *files]) + "\n\n"
                        digest.update(text.encode("utf-8", "surrogateescape"))   # names not in UTF-8 as on disk
                        images += len(files)
                        if part == "train":
                            train += [os.path.join(here, f) for f in files]
            found.append({"classes": classes, "images": images, "sha256": digest.copy().hexdigest()})
    except OSError as e:        # (None would be other data: a finished search moved aside as changed)
        raise _not_listed(e.filename or path, e) from None
    # grey images load as one channel (networks of another shape): recorded only then, so
    # the fingerprints of colour folders stay those recorded before grey folders were told apart
    headers = sample_headers(train)
    grey = all_grey(headers)
    found = [{**f, "channels": 1} if grey else f for f in found]
    if entry.get("image_size") is None and headers:
        # the size the images are resized to, when no setting fixes it: the first sampled
        # image's shorter side (nasgep.data), so images exported again at another size are
        # other data (a search went on at 32x32 after 16x16, a training resumed so too)
        found = [{**f, "image_size": min(headers[0][1])} for f in found]
    return found


def _flat_images(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file() and is_image_name(p.name))
