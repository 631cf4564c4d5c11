"""The one on-disk format of chainrule: named arrays plus JSON metadata, no code.

Model files (:mod:`chainrule.io`) and training checkpoints (:mod:`chainrule.train`)
are both written by :func:`write_archive` and read by :func:`read_archive`. This
module sits at the top of the import table and uses NumPy and the standard library
only.

Layout
------
A file is an ordinary ``.npz`` archive (a zip file, entries stored uncompressed) that
``numpy.load`` can open:

``<name>.npy``
    one entry per array, in NumPy's ``.npy`` format, written with
    ``allow_pickle=False``;
``__chainrule__.json``
    a UTF-8 JSON object::

        {"format": "chainrule", "format_version": 1,
         "checksum": "sha256:<64 hex digits>", "meta": {...}}

    ``meta`` is the dictionary the caller passed to :func:`write_archive`.

The checksum is a SHA-256 over, for each array in sorted name order, its name, its
dtype string (byte order included), its shape and its raw C-order bytes (each field
length-prefixed so no two different archives hash alike), followed by ``meta`` dumped
as canonical JSON (sorted keys, no spaces). The zip format's own CRC-32 catches most
accidental damage; the checksum also catches an archive whose arrays or metadata were
edited and re-zipped, and records which exact parameters a file was written with.

Why not pickle
--------------
Unpickling runs arbitrary code chosen by whoever wrote the file. Here nothing in a file
is ever executed: arrays are read with ``allow_pickle=False``, object arrays are
refused on write and on read, and the metadata is plain JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile

import numpy as np

__all__ = ["FORMAT_VERSION", "FORMAT_NAME", "ModelFileError", "write_archive", "atomic_write",
           "read_archive"]

#: Version of the layout written by :func:`write_archive`. A reader refuses any other.
FORMAT_VERSION = 1
#: Value of the ``"format"`` field, so a stray ``.npz`` is not mistaken for a model.
FORMAT_NAME = "chainrule"
_META_ENTRY = "__chainrule__.json"


class ModelFileError(ValueError):
    """A chainrule file is missing, corrupt, of an unknown version, or unsafe to read.

    The message names the path and the problem. Subclasses ``ValueError`` because the
    problem lies in the content handed to the reader.
    """


def _check_path(path, name: str = "path") -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike, got {type(path).__name__} "
                        f"{path!r}")
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not path:
        raise ValueError(f"{name} must be a non-empty file path, got {path!r}")
    return path


def _canonical_json(meta) -> str:
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _checksum(arrays: dict[str, np.ndarray], meta_json: str) -> str:
    h = hashlib.sha256()

    def field(data: bytes) -> None:
        # Length-prefix every field so concatenations cannot collide.
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)

    for key in sorted(arrays):
        arr = arrays[key]
        field(key.encode("utf-8"))
        field(arr.dtype.str.encode("ascii"))
        field(",".join(str(s) for s in arr.shape).encode("ascii"))
        field(np.ascontiguousarray(arr).tobytes())
    field(meta_json.encode("utf-8"))
    return "sha256:" + h.hexdigest()


def _check_arrays(arrays) -> dict[str, np.ndarray]:
    if not isinstance(arrays, dict):
        raise TypeError(f"arrays must be a dict of name -> numpy array, got "
                        f"{type(arrays).__name__}")
    out: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        if not isinstance(key, str):
            raise TypeError(f"arrays keys must be str, got {type(key).__name__} {key!r}")
        if not key or "\x00" in key or key in (_META_ENTRY, _META_ENTRY[:-len(".json")]):
            raise ValueError(f"arrays key {key!r} is not allowed (empty, contains NUL, or "
                             f"reserved for the metadata entry {_META_ENTRY!r})")
        arr = np.asarray(value)
        if arr.dtype.hasobject:
            raise TypeError(f"arrays[{key!r}] has dtype {arr.dtype}, which holds Python "
                            f"objects; only plain numeric/bool/string arrays can be saved "
                            f"(objects would need pickle)")
        out[key] = arr
    return out


def write_archive(path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write named arrays and JSON metadata to ``path``, atomically.

    The file is written to a temporary file in the same directory, flushed and
    ``fsync``-ed, then renamed over ``path`` with :func:`os.replace`, and the directory
    is ``fsync``-ed. A crash or an error at any point leaves either the old file or the
    new one, never a mixture, and no temporary file behind.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file (conventionally ending in ``.npz``). Its directory must exist.
    arrays : dict of str to numpy.ndarray
        Arrays to store. Names must be non-empty strings; arrays of dtype ``object``
        are refused.
    meta : dict
        JSON-serialisable metadata (str keys; str, int, float, bool, None, lists and
        dicts as values), returned unchanged by :func:`read_archive`.

    Raises
    ------
    TypeError
        If ``arrays`` or ``meta`` hold something that cannot be stored without pickle.
    ValueError
        If an array name is empty or reserved.
    OSError
        If the file cannot be written (the destination is then left untouched).
    """
    path = _check_path(path)
    arrays = _check_arrays(arrays)
    if not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict, got {type(meta).__name__}")
    try:
        meta_json = _canonical_json(meta)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"meta must be JSON-serialisable (str keys; str, int, float, bool, "
                        f"None, list, dict values): {exc}") from None
    # What read_archive will see after a JSON round trip (tuples become lists, ...);
    # hashing that keeps writer and reader in agreement.
    meta_json = _canonical_json(json.loads(meta_json))
    header = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
              "checksum": _checksum(arrays, meta_json), "meta": json.loads(meta_json)}
    header_bytes = json.dumps(header, sort_keys=True, indent=1).encode("utf-8")

    def write(fh) -> None:
        with zipfile.ZipFile(fh, mode="w", compression=zipfile.ZIP_STORED,
                             allowZip64=True) as zf:
            for key, arr in arrays.items():
                with zf.open(key + ".npy", mode="w", force_zip64=True) as member:
                    np.lib.format.write_array(member, arr, allow_pickle=False)
            # A fixed timestamp keeps the bytes of a file a function of its content.
            info = zipfile.ZipInfo(_META_ENTRY, date_time=(1980, 1, 1, 0, 0, 0))
            zf.writestr(info, header_bytes, compress_type=zipfile.ZIP_STORED)

    atomic_write(path, write)


def atomic_write(path, write) -> None:
    """Create or replace ``path`` with what ``write(fh)`` writes to a binary file.

    ``write`` writes into a temporary file in the same directory, which is flushed,
    ``fsync``-ed and renamed over ``path`` (:func:`os.replace`, atomic on POSIX and
    Windows); then the directory is ``fsync``-ed so the rename survives a power cut.
    If anything fails (``KeyboardInterrupt`` included) the temporary file is removed
    and ``path`` keeps its old content. Used for ONNX files too.

    A symbolic link is written through to its target (as ``cp`` and shell redirection
    do): renaming over the link itself would replace it by a plain file and leave its
    target stale. A dangling link creates its target.

    Raises ``IsADirectoryError`` when ``path`` is a directory and
    ``FileNotFoundError`` when its directory does not exist, before writing anything.
    """
    path = _check_path(path)
    if os.path.islink(path):
        path = os.path.realpath(path)
    if os.path.isdir(path):
        # Found now: os.replace would fail later naming the temporary file instead.
        raise IsADirectoryError(f"cannot write {path!r}: it is a directory; give a file "
                                f"name")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write {path!r}: directory {directory!r} does not "
                                f"exist")
    fd, tmp_path = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                                    suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates the file private (0600); give it the permissions a plain
        # open() would, so saving a model does not silently change who can read it.
        os.chmod(tmp_path, 0o666 & ~_current_umask())
        os.replace(tmp_path, path)
    except BaseException:
        try:
            os.unlink(tmp_path)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_directory(directory: str) -> None:
    # Makes the rename itself durable on POSIX; not possible (nor needed) on Windows.
    if os.name != "posix":
        return
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def read_archive(path) -> tuple[dict[str, np.ndarray], dict]:
    """Read a file written by :func:`write_archive`, checking it on the way.

    Nothing in the file is executed: arrays are loaded with ``allow_pickle=False`` and
    the metadata is parsed as JSON.

    Parameters
    ----------
    path : str or os.PathLike
        File to read.

    Returns
    -------
    arrays : dict of str to numpy.ndarray
        The stored arrays, in memory (the file is closed on return).
    meta : dict
        The metadata given to :func:`write_archive`.

    Raises
    ------
    ModelFileError
        If the file is missing, unreadable, truncated, not a zip archive, lacks the
        chainrule metadata, has an unknown format version, holds a pickled or object
        array or an unexpected entry, or its checksum does not match.
    """
    path = _check_path(path)

    def fail(problem: str) -> ModelFileError:
        return ModelFileError(f"cannot read chainrule file {path!r}: {problem}")

    if not os.path.exists(path):
        raise fail("no such file")
    if not os.path.isfile(path):
        raise fail("not a regular file")
    if not zipfile.is_zipfile(path):
        raise fail("not a zip/.npz archive, or truncated (no zip directory at its end)")
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as exc:  # any parse failure of untrusted bytes is a corrupt file
        raise fail(f"not a readable .npz archive ({type(exc).__name__}: {exc})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile) or npz.zip is None:
        raise fail("not a .npz archive")
    zf = npz.zip
    with npz:
        names = zf.namelist()
        if len(set(names)) != len(names):
            raise fail("the archive has duplicate entries")
        if _META_ENTRY not in names:
            raise fail(f"missing the metadata entry {_META_ENTRY!r}; not a chainrule file "
                       f"(a plain .npz from numpy.savez?)")
        unexpected = [n for n in names if n != _META_ENTRY and not n.endswith(".npy")]
        if unexpected:
            raise fail(f"unexpected entries {unexpected} (only .npy arrays and "
                       f"{_META_ENTRY!r} are allowed)")
        try:
            header = json.loads(zf.read(_META_ENTRY).decode("utf-8"))
        except Exception as exc:
            raise fail(f"the metadata entry is corrupt ({type(exc).__name__}: {exc})") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
            raise fail(f"the metadata does not declare format {FORMAT_NAME!r}")
        version = header.get("format_version")
        if version != FORMAT_VERSION or isinstance(version, bool):
            newer = (isinstance(version, int) and not isinstance(version, bool)
                     and version > FORMAT_VERSION)
            hint = ("; it was written by a newer chainrule, upgrade to read it" if newer
                    else "")
            raise fail(f"unknown format version {version!r} (this chainrule reads version "
                       f"{FORMAT_VERSION}){hint}")
        checksum = header.get("checksum")
        meta = header.get("meta")
        if not isinstance(checksum, str) or not isinstance(meta, dict):
            raise fail("the metadata lacks a checksum string or a meta object")

        arrays = _read_arrays(npz, names, fail)

    expected = _checksum(arrays, _canonical_json(meta))
    if expected != checksum:
        raise fail(f"checksum mismatch (stored {checksum}, computed {expected}); the file "
                   f"was modified or damaged after it was written")
    return arrays, meta


def _read_arrays(npz, names, fail) -> dict[str, np.ndarray]:
    """Every ``.npy`` entry of an open archive, read without unpickling; ``fail(problem)``
    builds the error naming the file."""
    arrays: dict[str, np.ndarray] = {}
    for member in names:
        if member == _META_ENTRY:
            continue
        key = member[:-len(".npy")]
        try:
            with npz.zip.open(member) as fh:
                magic = fh.read(len(np.lib.format.MAGIC_PREFIX))
                if magic != np.lib.format.MAGIC_PREFIX:
                    raise fail(f"entry {member!r} is not a .npy array (pickled data or "
                               f"other bytes); refused")
                fh.seek(0)
                arr = np.lib.format.read_array(fh, allow_pickle=False)
                if fh.read(1):
                    raise fail(f"entry {member!r} has trailing bytes after its array")
        except ModelFileError:
            raise
        except ValueError as exc:
            if "allow_pickle" in str(exc) or "pickle" in str(exc).lower():
                raise fail(f"array {key!r} holds Python objects (pickled data); refused, "
                           f"loading it could run code") from None
            raise fail(f"array {key!r} is corrupt ({exc})") from None
        except Exception as exc:
            raise fail(f"array {key!r} is corrupt ({type(exc).__name__}: {exc})") from None
        if arr.dtype.hasobject:
            raise fail(f"array {key!r} has object dtype {arr.dtype}; refused")
        if not arr.flags.writeable:
            arr = arr.copy()
        arrays[key] = arr
    return arrays
