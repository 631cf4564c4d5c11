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
import math
import os
import stat
import tempfile
import zipfile

import numpy as np

from ._validation import check_path
from .errors import ModelFileError

__all__ = ["FORMAT_VERSION", "FORMAT_NAME", "ModelFileError", "write_archive", "atomic_write",
           "remove_stale_temporaries", "check_destination", "read_archive", "STDOUT_NAMES"]

#: Version of the layout written by :func:`write_archive`. A reader refuses any other.
FORMAT_VERSION = 1
#: Value of the ``"format"`` field, so a stray ``.npz`` is not mistaken for a model.
FORMAT_NAME = "chainrule"
_META_ENTRY = "__chainrule__.json"


def _canonical_json(meta) -> str:
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _checksum(arrays: dict[str, np.ndarray], meta_json: str) -> str:
    h = hashlib.sha256()

    def field(data: bytes) -> None:
        # Length-prefix every field so concatenations cannot collide.
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)

    def field_view(data: np.ndarray) -> None:
        h.update(data.size.to_bytes(8, "little"))
        h.update(data.data)  # the buffer itself (a memoryview), no copy

    for key in sorted(arrays):
        arr = arrays[key]
        field(key.encode("utf-8"))
        field(arr.dtype.str.encode("ascii"))
        field(",".join(str(s) for s in arr.shape).encode("ascii"))
        # The bytes in place (a uint8 view), not a tobytes() copy of every array.
        field_view(np.ascontiguousarray(arr).reshape(-1).view(np.uint8))
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
    path = check_path(path)
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


#: Name of standard output for writers that allow it (``allow_stdout=True``).
STDOUT_NAMES = ("-", "/dev/stdout")
_TMP_SUFFIX = ".tmp"


def atomic_write(path, write, *, refuse_same_as=(), allow_stdout: bool = False) -> None:
    """Create or replace ``path`` with what ``write(fh)`` writes to a binary file.

    The one write path of chainrule: model files, checkpoints, ONNX files, plots and
    the command line's outputs all go through it.

    ``write`` writes into a temporary file in the destination's directory, which is
    flushed, ``fsync``-ed and renamed over ``path`` (:func:`os.replace`, atomic on
    POSIX and Windows); then the directory is ``fsync``-ed so the rename survives a
    power cut. If anything fails (``KeyboardInterrupt`` included) the temporary file
    is removed and ``path`` keeps its old content. A writer killed outright
    (``SIGKILL``, power cut) cannot remove its temporary file: its name,
    ``.<name>.<pid>.<random>.tmp``, records the writer's process, and the next write
    to the same destination removes those whose process is gone
    (:func:`remove_stale_temporaries`).

    Before anything is written the destination is checked:

    - a symbolic link is written through to its target (as ``cp`` and shell
      redirection do), a dangling link creates its target, a link loop is refused;
    - only a regular file may be replaced: a directory, device, FIFO or socket is
      refused (replacing ``/dev/null`` by a file would break the system);
    - an existing file keeps its permission bits (a private 0600 model stays
      private); a new file gets those the umask allows, as ``open()`` would;
    - a read-only file (no write bit) is refused rather than silently replaced;
    - a destination that is the same file as one of ``refuse_same_as`` (the inputs
      of the command) is refused, so that a command never overwrites what it reads.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file. Its directory must exist.
    write : callable
        ``write(fh)`` writes the content to the binary file object ``fh``.
    refuse_same_as : iterable of str or os.PathLike, optional
        Paths the destination must not be (compared as files, through links).
    allow_stdout : bool, default False
        With True, ``"-"`` and ``"/dev/stdout"`` write straight to standard output
        (not atomic: a stream cannot be replaced).

    Raises
    ------
    IsADirectoryError
        If ``path`` is a directory.
    FileNotFoundError
        If its directory does not exist.
    PermissionError
        If ``path`` is a read-only file.
    ValueError
        If ``path`` is a device, FIFO, socket or link loop, or one of
        ``refuse_same_as``.
    """
    path = check_path(path)
    if allow_stdout and path in STDOUT_NAMES:
        _write_stdout(write)
        return
    path = check_destination(path, refuse_same_as=refuse_same_as)
    mode = _replace_mode(path)
    directory = os.path.dirname(os.path.abspath(path))
    remove_stale_temporaries(path)
    fd, tmp_path = tempfile.mkstemp(dir=directory, suffix=_TMP_SUFFIX,
                                    prefix=f".{os.path.basename(path)}.{os.getpid()}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates the file private (0600); give it the old file's bits, or
        # those a plain open() would, so saving does not change who can read it.
        os.chmod(tmp_path, mode)
        os.replace(tmp_path, path)
    except BaseException:
        try:
            os.unlink(tmp_path)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


class _WholeWrites:
    """A binary stream whose ``write`` writes every byte or raises.

    When the reader of a pipe goes away in the middle of a large write, the kernel
    takes the part that fits and Python's buffered ``write`` returns that short count
    without raising; a writer that ignores the count would end with status 0 and part
    of its output. Writing the rest raises ``BrokenPipeError``, as the command line
    expects.
    """

    def __init__(self, stream):
        self.stream = stream

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        while len(view):
            n = self.stream.write(view)
            if not n:  # None (would block) or 0: nothing taken, nothing will be
                raise BrokenPipeError("standard output takes no more data")
            view = view[n:]
        return len(data)

    def flush(self) -> None:
        self.stream.flush()


def _write_stdout(write) -> None:
    import sys
    stream = _WholeWrites(sys.stdout.buffer if hasattr(sys.stdout, "buffer") else sys.stdout)
    write(stream)
    stream.flush()


def check_destination(path, *, name: str = "path", refuse_same_as=()) -> str:
    """Check that :func:`atomic_write` may replace ``path``, without writing anything.

    For callers that must refuse a bad destination before they change anything (``fit``
    checks its ``checkpoint`` before the first epoch). Raises what :func:`atomic_write`
    raises for the destination, with ``name`` in the message for a path that is not a
    non-empty str or os.PathLike.

    Returns
    -------
    str
        The file that would be replaced (a symbolic link resolved).
    """
    path = check_path(path, name)
    if os.path.islink(path):
        try:
            os.stat(path)
        except FileNotFoundError:
            pass  # dangling: the write creates the target
        except OSError as exc:
            raise ValueError(f"cannot write {path!r}: it is a symbolic link that does not "
                             f"resolve ({exc.strerror}); refused") from None
        path = os.path.realpath(path)
    if os.path.isdir(path):
        # Found now: os.replace would fail later naming the temporary file instead.
        raise IsADirectoryError(f"cannot write {path!r}: it is a directory; give a file "
                                f"name")
    if os.path.exists(path) and not stat.S_ISREG(os.stat(path).st_mode):
        raise ValueError(f"cannot write {path!r}: it is not a regular file (a device, FIFO "
                         f"or socket); refused, chainrule only replaces regular files")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write {path!r}: directory {directory!r} does not "
                                f"exist")
    for other in refuse_same_as:
        other = check_path(other, "refuse_same_as")
        if _same_file(path, other):
            raise ValueError(f"cannot write {path!r}: it is the input file {other!r}; "
                             f"writing would destroy it, give another output path")
    _replace_mode(path)
    return path


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist (yet): compare the names
        return os.path.realpath(a) == os.path.realpath(b)


def _replace_mode(path: str) -> int:
    """Permission bits for the new file: the existing file's, refusing a read-only one."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return 0o666 & ~_current_umask()
    mode = stat.S_IMODE(st.st_mode)
    # The bits, not os.access: root may write anything, yet a 0444 file says "keep".
    if not mode & 0o222 or not os.access(path, os.W_OK):
        raise PermissionError(f"cannot write {path!r}: the file is read-only (mode "
                              f"{mode:04o}); refused, make it writable to replace it")
    return mode


def remove_stale_temporaries(path) -> list[str]:
    """Remove the temporary files that killed writers of ``path`` left behind.

    A temporary file of :func:`atomic_write` is named ``.<name>.<pid>.<random>.tmp``;
    one whose process no longer exists can never be completed, and is removed. Those
    of live processes (a concurrent writer) are kept. POSIX only (elsewhere a dead
    process cannot be told from a live one, and nothing is removed).

    Parameters
    ----------
    path : str or os.PathLike
        The destination whose temporaries to remove.

    Returns
    -------
    list of str
        The files removed.
    """
    path = os.path.abspath(check_path(path))
    directory, prefix = os.path.dirname(path), "." + os.path.basename(path) + "."
    if os.name != "posix":
        return []
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    removed = []
    for name in names:
        if not (name.startswith(prefix) and name.endswith(_TMP_SUFFIX)):
            continue
        pid = name[len(prefix):].split(".", 1)[0]
        if not pid.isdigit() or _process_alive(int(pid)):
            continue
        try:
            os.unlink(os.path.join(directory, name))
            removed.append(os.path.join(directory, name))
        except OSError:
            pass
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # exists, owned by someone else (or not a pid: leave it)
    return True


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

    Nothing in the file is executed: arrays are read with ``allow_pickle=False`` and
    the metadata is parsed as JSON. Nothing is allocated from a size the file merely
    declares: every entry must be stored uncompressed (as :func:`write_archive`
    writes them), so its size on disk is its real size, the entries together must fit
    in the file, and each array's header must declare exactly the bytes its entry
    holds. Peak memory is the size of the arrays plus a small constant (the checksum
    is computed over the arrays in place).

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
        For every refusal: the file is missing, not a regular file, unreadable,
        truncated, not a zip archive, has compressed entries or sizes that do not add
        up, lacks the chainrule metadata, has an unknown format version, holds a
        pickled or object array or an unexpected entry, or its checksum does not
        match; also when memory runs out reading it. Never a ``MemoryError`` or an
        exception type of :mod:`zipfile` or NumPy.
    """
    path = check_path(path)

    def fail(problem: str) -> ModelFileError:
        return ModelFileError(f"cannot read chainrule file {path!r}: {problem}")

    if not os.path.exists(path):
        raise fail("no such file")
    if not os.path.isfile(path):
        raise fail("not a regular file")
    try:
        with zipfile.ZipFile(path) as zf:
            meta, checksum, names = _read_header(zf, os.path.getsize(path), fail)
            arrays = _read_arrays(zf, names, fail)
    except ModelFileError:
        raise
    except MemoryError:
        raise fail("not enough memory to read its arrays") from None
    except Exception as exc:  # any parse failure of untrusted bytes is a corrupt file
        raise fail(f"not a readable .npz archive, or truncated ({type(exc).__name__}: "
                   f"{exc})") from None
    expected = _checksum(arrays, _canonical_json(meta))
    if expected != checksum:
        raise fail(f"checksum mismatch (stored {checksum}, computed {expected}); the file "
                   f"was modified or damaged after it was written")
    return arrays, meta


def _read_header(zf, file_size: int, fail) -> tuple[dict, str, list]:
    """Check the archive's directory and parse its metadata entry: ``(meta,
    checksum, entry names)``."""
    infos = zf.infolist()
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        raise fail("the archive has duplicate entries")
    if _META_ENTRY not in names:
        raise fail(f"missing the metadata entry {_META_ENTRY!r}; not a chainrule file "
                   f"(a plain .npz from numpy.savez?)")
    unexpected = [n for n in names if n != _META_ENTRY and not n.endswith(".npy")]
    if unexpected:
        raise fail(f"unexpected entries {unexpected} (only .npy arrays and "
                   f"{_META_ENTRY!r} are allowed)")
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
            # A compressed entry's declared size is a promise a zip bomb breaks.
            raise fail(f"entry {info.filename!r} is compressed (method "
                       f"{info.compress_type}, {info.compress_size} bytes declaring "
                       f"{info.file_size}); chainrule files store entries uncompressed")
    if sum(info.file_size for info in infos) > file_size:
        raise fail(f"its entries declare {sum(i.file_size for i in infos)} bytes, more "
                   f"than the file's {file_size}; truncated or forged")
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
        hint = "; it was written by a newer chainrule, upgrade to read it" if newer else ""
        raise fail(f"unknown format version {version!r} (this chainrule reads version "
                   f"{FORMAT_VERSION}){hint}")
    checksum = header.get("checksum")
    meta = header.get("meta")
    if not isinstance(checksum, str) or not isinstance(meta, dict):
        raise fail("the metadata lacks a checksum string or a meta object")
    return meta, checksum, names


#: Longest ``.npy`` header accepted; NumPy's own default limit.
_MAX_NPY_HEADER = 10000


def _read_arrays(zf, names, fail) -> dict[str, np.ndarray]:
    """Every ``.npy`` entry of an open archive, read without unpickling, each checked
    to declare exactly the bytes it holds before its array is allocated;
    ``fail(problem)`` builds the error naming the file."""
    fmt = np.lib.format
    arrays: dict[str, np.ndarray] = {}
    for member in names:
        if member == _META_ENTRY:
            continue
        key = member[:-len(".npy")]
        size = zf.getinfo(member).file_size
        with zf.open(member) as fh:
            if fh.read(len(fmt.MAGIC_PREFIX)) != fmt.MAGIC_PREFIX:
                raise fail(f"entry {member!r} is not a .npy array (pickled data or other "
                           f"bytes); refused")
            fh.seek(0)
            try:
                version = fmt.read_magic(fh)
                # 3.0 only differs for structured dtypes with non-ASCII field names,
                # which write_archive never writes.
                read_header = {(1, 0): fmt.read_array_header_1_0,
                               (2, 0): fmt.read_array_header_2_0}.get(version)
                if read_header is None:
                    raise ValueError(f"unsupported .npy version {version}")
                shape, _, dtype = read_header(fh, max_header_size=_MAX_NPY_HEADER)
            except ValueError as exc:
                raise fail(f"array {key!r} has a corrupt or oversized .npy header "
                           f"({exc})") from None
            if dtype.hasobject:
                raise fail(f"array {key!r} holds Python objects (pickled data); refused, "
                           f"loading it could run code")
            data_bytes = math.prod(shape) * dtype.itemsize
            if data_bytes != size - fh.tell():
                raise fail(f"array {key!r} declares shape {shape} of {dtype} "
                           f"({data_bytes} bytes), its entry holds {size - fh.tell()}")
            fh.seek(0)
            try:
                arr = fmt.read_array(fh, allow_pickle=False)
            except ValueError as exc:
                raise fail(f"array {key!r} is corrupt ({exc})") from None
        arrays[key] = arr if arr.flags.writeable else arr.copy()
    return arrays
