"""Official MNIST and Fashion-MNIST: find the four IDX files on this machine, or download them.

:func:`load_official` looks in ``data_dir`` when given; otherwise in the per-user cache folder
(:func:`cache_folder`) and then in system copies (Debian's ``dataset-fashion-mnist``, found through
the package's dpkg file list, see :func:`system_folders`). What is missing is downloaded with
urllib, with a timeout on every request, into ``data_dir`` or the cache, checked against its
known SHA-256 and only then moved into place (temporary file in the same folder, fsync,
``os.replace``), so a failed, interrupted or corrupt download leaves nothing behind. Files found
on disk are trusted as they are (they are the user's own, or dpkg's, which verified them on
install); they are only parsed and checked for shape and labels.
"""

import contextlib
import hashlib
import http.client
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Mapping, Optional, Sequence, Tuple

import numpy as np

from . import _data
from ._checkpoint import new_temp_file
from ._errors import check_choice


CLASS_NAMES = {
    "fashion_mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    "mnist": tuple("0123456789"),
}

# The four standard file names of each set, per split: (images, labels).
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

# Base URLs tried in order, each holding the four standard names. Fashion-MNIST: Keras' bucket
# (keras/src/datasets/fashion_mnist.py), then Zalando's own S3 website endpoint (the Fashion-MNIST
# README, torchvision, tensorflow_datasets), which serves plain HTTP only. MNIST: the ossci mirror
# that torchvision uses, then the cvdf mirror that tensorflow_datasets uses (url_checksums/mnist.txt).
BASE_URLS = {
    "fashion_mnist": (
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
}

# SHA-256 of the official .gz files, from tensorflow_datasets' url_checksums/fashion_mnist.txt and
# url_checksums/mnist.txt (Keras' FILE_HASHES carries the same Fashion-MNIST values). Fashion-MNIST:
# the label files were hashed from Zalando's repository (data/fashion/); the image files were rebuilt
# byte for byte from Debian's dataset-fashion-mnist (same deflate stream, header renamed by Debian)
# and also match the MD5s of the Fashion-MNIST README. MNIST: not hashed here; the same values
# appear independently in several loaders of the LeCun, cvdf and ossci copies.
SHA256 = {
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
}

# Debian packages that install a set's IDX files (MNIST itself has none).
DEBIAN_PACKAGES = {"fashion_mnist": "dataset-fashion-mnist"}
# Where dpkg keeps each package's file list, and the dpkg program; tests point both elsewhere.
_DPKG_INFO_DIR = "/var/lib/dpkg/info"
_DPKG_COMMAND: Optional[str] = "dpkg"
_CHUNK = 1 << 20  # bytes read per step of a download


class DatasetNotFoundError(FileNotFoundError):
    """The files are on no folder looked at and could not be downloaded; the message says where it
    looked, what each download attempt got, and how to get the files."""


class ChecksumError(ValueError):
    """A downloaded file does not have its known SHA-256; it was not kept."""


def cache_folder(name: str) -> str:
    """The per-user folder for set ``name``: ``$FFNN_JAX_DATA_DIR/<name>`` when that variable is
    set, else ``$XDG_CACHE_HOME/ffnn_jax/<name>``, else ``~/.cache/ffnn_jax/<name>``."""
    root = os.environ.get("FFNN_JAX_DATA_DIR")
    if root:
        return os.path.join(os.path.expanduser(root), name)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if not xdg or not os.path.isabs(xdg):  # the XDG spec says to ignore a relative path
        xdg = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(xdg, "ffnn_jax", name)


def _package_files(package: str) -> Sequence[str]:
    """The paths that dpkg lists for ``package``: its ``.list`` file, else ``dpkg -L``; [] if none."""
    names = [f"{package}.list"]
    if os.path.isdir(_DPKG_INFO_DIR):
        names += sorted(f for f in os.listdir(_DPKG_INFO_DIR) if f.startswith(package + ":") and f.endswith(".list"))
    for list_name in names:
        with contextlib.suppress(OSError):
            with open(os.path.join(_DPKG_INFO_DIR, list_name), encoding="utf-8", errors="replace") as f:
                return f.read().splitlines()
    if _DPKG_COMMAND is None or shutil.which(_DPKG_COMMAND) is None:
        return []
    try:
        done = subprocess.run([_DPKG_COMMAND, "-L", package], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return done.stdout.splitlines() if done.returncode == 0 else []


def system_folders(name: str) -> Tuple[str, ...]:
    """Folders of a system-wide copy of set ``name``: each folder that the Debian package's file
    list names as holding one of the standard file names (plain or .gz), in list order."""
    package = DEBIAN_PACKAGES.get(name)
    if package is None:
        return ()
    standard = {f for pair in FILES.values() for gz in pair for f in (gz, gz[: -len(".gz")])}
    folders = []
    for line in _package_files(package):
        path = line.strip()
        if os.path.basename(path) in standard and os.path.dirname(path) not in folders:
            folders.append(os.path.dirname(path))
    return tuple(folders)


def _existing(folder: str, gz_name: str) -> Optional[str]:
    """The path of ``gz_name`` in ``folder``, uncompressed or .gz, or None."""
    for candidate in (gz_name[: -len(".gz")], gz_name):
        path = os.path.join(folder, candidate)
        if os.path.isfile(path):
            return path
    return None


def _progress_bar(total: Optional[int], desc: str, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr)


def _copy_url(url: str, out, *, timeout: float, progress: bool) -> str:
    """Streams ``url`` into the open file ``out``; returns the SHA-256 hex digest of what came."""
    request = urllib.request.Request(url, headers={"User-Agent": "ffnn_jax"})
    digest = hashlib.sha256()
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        bar = _progress_bar(expected, os.path.basename(url), progress)
        received = 0
        try:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
    if expected is not None and received != expected:
        raise ConnectionError(f"truncated response: got {received} of {expected} bytes")
    return digest.hexdigest()


def _download(url: str, path: str, sha256: str, *, timeout: float, progress: bool) -> None:
    """Downloads ``url`` to ``path`` atomically; nothing is left at or beside ``path`` on failure.

    Raises:
      ChecksumError: what came does not have the SHA-256 ``sha256``.
      OSError, http.client.HTTPException: the request failed (see urllib.error.URLError).
    """
    folder = os.path.dirname(path)
    fd, temporary = new_temp_file(folder, prefix=f".{os.path.basename(path)}.", suffix="part")
    try:
        with os.fdopen(fd, "wb") as out:
            actual = _copy_url(url, out, timeout=timeout, progress=progress)
            out.flush()
            os.fsync(out.fileno())
        if actual != sha256.lower():
            raise ChecksumError(
                f"{os.path.basename(path)} downloaded from {url} has SHA-256 {actual}, expected {sha256.lower()}; "
                "the file was not kept (a broken mirror or a changed file?)"
            )
        os.replace(temporary, path)
    except BaseException:  # Ctrl-C included: never leave a partial file
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    with contextlib.suppress(OSError):  # make the rename durable where the OS allows it
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _describe(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return f"cannot connect ({error.reason})"
    return f"{type(error).__name__}: {error}"


def _read_split(images_path: str, labels_path: str) -> Tuple[np.ndarray, np.ndarray]:
    images, labels = _data.load_idx(images_path), _data.load_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise ValueError(f"{images_path!r} must hold uint8 images [n, 28, 28], got {images.dtype} {images.shape}")
    if labels.shape != (len(images),):
        raise ValueError(f"{labels_path!r} must hold {len(images)} labels (one per image), got shape {labels.shape}")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{labels_path!r} must hold labels 0..9, got {int(labels.max())}")
    return images.reshape(len(images), -1).astype(np.float32) / 255.0, labels.astype(np.int32)


def load_official(
    name: str,
    split: str = "train",
    *,
    data_dir: Optional[str] = None,
    download: bool = True,
    mirror: Optional[str] = None,
    progress: bool = True,
    checksums: Optional[Mapping[str, str]] = None,
    timeout: float = 60.0,
) -> Tuple[np.ndarray, np.ndarray]:
    """The official train or test split of MNIST or Fashion-MNIST, downloaded if need be.

    Args:
      name: ``"fashion_mnist"`` or ``"mnist"``.
      split: ``"train"`` (60000 images) or ``"test"`` (10000).
      data_dir: a folder holding the files (plain or .gz); when given, only it is used, and what is
        missing is downloaded into it. Default: the per-user cache (:func:`cache_folder`), then
        system copies (:func:`system_folders`), downloading into the cache.
      download: download missing files; with False, a missing file is an error.
      mirror: a base URL holding the four standard file names, used instead of the official ones
        (default ``$FFNN_JAX_DATA_MIRROR``, else :data:`BASE_URLS`).
      progress: draw a tqdm progress bar on stderr while downloading (when tqdm is installed).
      checksums: file name -> SHA-256 of the .gz file, checked on every download (default
        :data:`SHA256` of ``name``).
      timeout: seconds each network operation may wait.

    Returns:
      ``(x, y)``: x [n, 784] float32 pixels in [0, 1], y [n] int32 labels 0..9 (see :data:`CLASS_NAMES`).

    Raises:
      ValueError: an unknown ``name`` or ``split``, or a file that is not the expected IDX data.
      ChecksumError: a downloaded file has the wrong SHA-256 (a ValueError; nothing was kept).
      DatasetNotFoundError: the files are nowhere looked and could not be downloaded (a FileNotFoundError).

    Examples:
      >>> x, y = load_official("fashion_mnist", "test")  # doctest: +SKIP
      >>> x.shape, y.dtype  # doctest: +SKIP
      ((10000, 784), dtype('int32'))
    """
    name = check_choice("name", name, CLASS_NAMES)
    split = check_choice("split", split, FILES)
    checksums = SHA256[name] if checksums is None else checksums
    needed = FILES[split]
    if data_dir is not None:
        folders, target = (data_dir,), data_dir
        looked = [f"{data_dir} (data_dir)"]
    else:
        target = cache_folder(name)
        system = system_folders(name)
        folders = (target,) + system
        looked = [f"{target} (the per-user cache; FFNN_JAX_DATA_DIR or XDG_CACHE_HOME moves it)"]
        looked += [f"{folder} (Debian's {DEBIAN_PACKAGES[name]})" for folder in system]
        if name in DEBIAN_PACKAGES and not system:
            package = DEBIAN_PACKAGES[name]
            looked.append(f"Debian's {package}: not installed ({_DPKG_INFO_DIR}/{package}.list, dpkg -L {package})")
    for folder in folders:
        paths = [_existing(folder, gz) for gz in needed]
        if all(paths):
            return _read_split(*paths)
    paths = [_existing(target, gz) for gz in needed]
    failures = []
    if download:
        bases = (mirror or os.environ.get("FFNN_JAX_DATA_MIRROR") or "").strip()
        bases = (bases,) if bases else BASE_URLS[name]
        for i, gz in enumerate(needed):
            if paths[i] is not None:
                continue
            if gz not in checksums:
                raise ValueError(f"`checksums` has no SHA-256 for {gz!r}; it has {sorted(checksums)}")
            os.makedirs(target, exist_ok=True)
            mismatches = []
            for base in bases:
                url = base.rstrip("/") + "/" + gz
                try:
                    _download(url, os.path.join(target, gz), checksums[gz], timeout=timeout, progress=progress)
                except ChecksumError as error:
                    mismatches.append(error)
                except (OSError, http.client.HTTPException) as error:
                    failures.append(f"{url}: {_describe(error)}")
                else:
                    paths[i] = os.path.join(target, gz)
                    break
            if paths[i] is None and mismatches:
                raise mismatches[0]
            if paths[i] is None:
                break
        if all(paths):
            return _read_split(*paths)
    missing = [gz for gz, path in zip(needed, paths) if path is None]
    raise DatasetNotFoundError(_not_found_message(name, split, missing, looked, failures, download))


def _not_found_message(name, split, missing, looked, failures, download) -> str:
    lines = [f"{name} ({split} split): {', '.join(missing)} (plain or .gz) not found. Looked in:"]
    lines += [f"  - {where}" for where in looked]
    if failures:
        lines.append("Downloading failed:")
        lines += [f"  - {failure}" for failure in failures]
    elif not download:
        lines.append("Nothing was downloaded (download=False).")
    lines.append("To get the files:")
    either = ""
    if name in DEBIAN_PACKAGES:
        lines.append(f"  - install the system copy: apt-get install {DEBIAN_PACKAGES[name]}")
        either = "or "
    files = ", ".join(f for pair in FILES.values() for f in pair)
    lines.append(f"  - {either}pass --data_dir DIR (data_dir=DIR), a folder holding the four files {files}")
    lines.append("  - or set a mirror holding them: mirror=URL, or the environment variable FFNN_JAX_DATA_MIRROR=URL")
    return "\n".join(lines)
