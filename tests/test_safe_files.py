"""Issue 11, items 1 and 2: the one safe write path (special files, permissions,
self-overwrite, link loops, stale temporaries, crashes) and bounded reads (zip bombs,
forged sizes, the checksum's memory) of chainrule._fileformat."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

from chainrule import _fileformat
from chainrule._fileformat import (
    ModelFileError,
    atomic_write,
    read_archive,
    remove_stale_temporaries,
    write_archive,
)

META_ENTRY = "__chainrule__.json"
ARRAYS = {"W": np.arange(6.0).reshape(2, 3), "b": np.ones(3)}
SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "src")


def _write_text(path, text: bytes):
    atomic_write(path, lambda fh: fh.write(text))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _temporaries(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(".tmp"))


# -- item 1: what may be replaced ----------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_and_stays_a_fifo(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        write_archive(fifo, ARRAYS, {})
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="needs unix sockets")
def test_a_socket_is_refused(tmp_path):
    path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(os.fspath(path))
        with pytest.raises(ValueError, match="not a regular file"):
            _write_text(path, b"x")
        assert stat.S_ISSOCK(os.lstat(path).st_mode)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_link_to_a_special_file_is_refused(tmp_path):
    # What `--save /dev/null` does, without risking the real /dev/null when broken.
    fifo, link = tmp_path / "pipe", tmp_path / "link"
    os.mkfifo(fifo)
    os.symlink(fifo, link)
    with pytest.raises(ValueError, match="not a regular file"):
        _write_text(link, b"x")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and os.path.islink(link)


def test_existing_permission_bits_are_kept(tmp_path):
    path = tmp_path / "private.npz"
    write_archive(path, ARRAYS, {})
    os.chmod(path, 0o600)
    write_archive(path, ARRAYS, {"again": True})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    os.chmod(path, 0o640)
    _write_text(path, b"y")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_a_new_file_gets_the_umask_bits(tmp_path):
    old = os.umask(0o027)
    try:
        _write_text(tmp_path / "new.txt", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "new.txt").st_mode) == 0o640


def test_a_read_only_file_is_refused_and_kept(tmp_path):
    path = tmp_path / "frozen.txt"
    path.write_bytes(b"old")
    os.chmod(path, 0o444)
    # The mode bits decide, even for root (whom os.access always lets write).
    with pytest.raises(PermissionError, match="read-only"):
        _write_text(path, b"new")
    assert path.read_bytes() == b"old" and _temporaries(tmp_path) == []


def test_an_input_of_the_command_is_refused(tmp_path):
    data = tmp_path / "d.npz"
    data.write_bytes(b"input")
    link = tmp_path / "alias.npz"
    os.symlink(data, link)
    for dest in (data, link, tmp_path / "." / "d.npz"):
        with pytest.raises(ValueError, match="input file"):
            atomic_write(dest, lambda fh: fh.write(b"out"), refuse_same_as=[data])
    assert data.read_bytes() == b"input"
    # Another destination is fine, and a not-yet-existing input compares by name.
    atomic_write(tmp_path / "out.npz", lambda fh: fh.write(b"out"), refuse_same_as=[data])
    with pytest.raises(ValueError, match="input file"):
        atomic_write(tmp_path / "later", lambda fh: fh.write(b"x"),
                     refuse_same_as=[tmp_path / "later"])


def test_a_symlink_loop_is_refused_and_kept(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    os.symlink(b, a)
    os.symlink(a, b)
    with pytest.raises(ValueError, match="symbolic link"):
        _write_text(a, b"x")
    assert os.path.islink(a) and os.path.islink(b)


def test_a_link_is_written_through_and_a_dangling_one_creates_its_target(tmp_path):
    target, link = tmp_path / "target", tmp_path / "link"
    os.symlink(target, link)
    _write_text(link, b"one")
    assert os.path.islink(link) and target.read_bytes() == b"one"


def test_stdout_is_written_only_when_allowed(tmp_path):
    code = ("import sys; from chainrule._fileformat import atomic_write; "
            "atomic_write(sys.argv[1], lambda fh: fh.write(b'streamed'), allow_stdout=True)")
    env = dict(os.environ, PYTHONPATH=SRC)
    for name in ("-", "/dev/stdout"):
        # stdout is a pipe here: the case that used to fail on /proc/<pid>/fd/pipe:[...]
        out = subprocess.run([sys.executable, "-c", code, name], capture_output=True,
                             env=env, check=True, cwd=tmp_path)
        assert out.stdout == b"streamed"
    assert os.listdir(tmp_path) == []
    # Without allow_stdout, "-" is a file name like any other.
    _write_text(tmp_path / "-", b"file")
    assert (tmp_path / "-").read_bytes() == b"file"


# -- item 1: temporaries of killed writers -------------------------------------------

def test_temporaries_of_dead_writers_are_removed_by_the_next_save(tmp_path):
    path = tmp_path / "m.npz"
    dead = tmp_path / f".m.npz.{_dead_pid()}.abc123.tmp"
    alive = tmp_path / f".m.npz.{os.getppid()}.def456.tmp"
    other = tmp_path / f".other.npz.{_dead_pid()}.x.tmp"
    for f in (dead, alive, other):
        f.write_bytes(b"partial")
    write_archive(path, ARRAYS, {})
    assert not dead.exists()
    assert alive.exists() and other.exists()     # a live writer's, another file's
    assert remove_stale_temporaries(tmp_path / "other.npz") == [os.fspath(other)]


_SAVE_LOOP = """
import sys, numpy as np
from chainrule._fileformat import write_archive
i = 0
arrays = {"W": np.full((300, 300), 0.0)}
print("ready", flush=True)
while True:
    i += 1
    arrays["W"][...] = i
    write_archive(sys.argv[1], arrays, {"i": i})
"""


@pytest.mark.slow
def test_killing_a_save_loop_leaves_a_whole_file_and_no_pile_of_temporaries(tmp_path):
    path = tmp_path / "m.npz"
    write_archive(path, {"W": np.full((300, 300), 0.0)}, {"i": 0})
    env = dict(os.environ, PYTHONPATH=SRC)
    rng = np.random.default_rng(0)
    kills = 12
    for _ in range(kills):
        proc = subprocess.Popen([sys.executable, "-c", _SAVE_LOOP, os.fspath(path)],
                                env=env, stdout=subprocess.PIPE)
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.0, 0.15))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        arrays, meta = read_archive(path)   # the old file or a new one, whole
        assert np.all(arrays["W"] == meta["i"])
        assert len(_temporaries(tmp_path)) <= 1   # at most the killed writer's
    write_archive(path, {"W": np.zeros((1, 1))}, {"i": 0})
    assert _temporaries(tmp_path) == []


# -- item 2: bounded reads -----------------------------------------------------------

def _meta_bytes(arrays):
    meta_json = _fileformat._canonical_json({})
    header = {"format": "chainrule", "format_version": 1, "meta": {},
              "checksum": _fileformat._checksum(arrays, meta_json)}
    return json.dumps(header).encode()


def _npy(arr):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr)
    return buf.getvalue()


def test_a_compressed_zip_bomb_is_refused_before_expanding(tmp_path):
    # 32 MiB of zeros deflate to ~32 KiB; a real bomb declares GiBs the same way.
    big = np.zeros(4 * 2**20)
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("W.npy", _npy(big))
        zf.writestr(META_ENTRY, _meta_bytes({"W": big}))
    assert os.path.getsize(path) < 2**20
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match="compressed"):
            read_archive(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20


def test_an_unknown_compression_method_is_a_model_file_error(tmp_path):
    # One flipped byte in the method field: zipfile's NotImplementedError must not leak.
    path = tmp_path / "m.npz"
    write_archive(path, ARRAYS, {})
    data = bytearray(path.read_bytes())
    central = data.rfind(b"PK\x01\x02")
    data[central + 10] = 99
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError):
        read_archive(path)


def test_a_header_declaring_more_than_the_entry_holds_is_refused_unallocated(tmp_path):
    arr = np.zeros(4)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f8", "fortran_order": False, "shape": (10**10,)})
    forged = buf.getvalue() + arr.tobytes()     # 80 GB declared, 32 bytes held
    path = tmp_path / "m.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("W.npy", forged)
        zf.writestr(META_ENTRY, _meta_bytes({"W": arr}))
    with pytest.raises(ModelFileError, match="declares shape"):
        read_archive(path)


def test_a_long_npy_header_is_not_called_pickled(tmp_path):
    arr = np.zeros(2, dtype=[(f"f{i}", "<f8") for i in range(600)])
    path = tmp_path / "m.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("W.npy", _npy(arr))
        zf.writestr(META_ENTRY, _meta_bytes({"W": np.zeros(1)}))
    with pytest.raises(ModelFileError, match="oversized .npy header") as info:
        read_archive(path)
    assert "pickle" not in str(info.value).split("(")[0]


def test_running_out_of_memory_is_a_model_file_error(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    write_archive(path, ARRAYS, {})

    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(np.lib.format, "read_array", no_memory)
    with pytest.raises(ModelFileError, match="not enough memory"):
        read_archive(path)


def test_read_peak_memory_is_the_arrays_plus_a_constant(tmp_path):
    arrays = {"W": np.random.default_rng(0).standard_normal(4 * 2**20)}   # 32 MiB
    path = tmp_path / "m.npz"
    write_archive(path, arrays, {})
    tracemalloc.start()
    try:
        loaded, _ = read_archive(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(loaded["W"], arrays["W"])
    # A whole-array copy for the checksum would double it.
    assert peak < arrays["W"].nbytes * 1.25


def test_a_declared_size_or_dtype_the_arrays_do_not_back_is_refused(tmp_path):
    """An edited file (checksum recomputed) may declare a batch normalisation of 10**12
    features: load refused it only after allocating its running statistics (a raw
    MemoryError); and buffers of another dtype loaded, cast. Both are ModelFileErrors,
    nothing allocated from the declared size."""
    import chainrule as cr

    model = cr.Sequential([cr.Affine(4, 6), cr.BatchNorm1d(6), cr.Affine(6, 3)], rng=0)
    cr.io.save(model, tmp_path / "bn.npz")
    arrays, meta = read_archive(tmp_path / "bn.npz")
    meta["config"]["layers"][1]["config"]["num_features"] = 10**12
    write_archive(tmp_path / "big.npz", arrays, meta)
    tracemalloc.start()
    with pytest.raises(ModelFileError, match="declares num_features=1000000000000, more "
                                             "entries than any array"):
        cr.io.load(tmp_path / "big.npz")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50 * 2**20
    arrays, meta = read_archive(tmp_path / "bn.npz")
    for bad in (np.zeros(6, "datetime64[s]"), np.zeros(6, np.complex128), np.zeros(6, bool),
                np.zeros(6, np.float16)):
        arrays["running_mean2"] = bad
        write_archive(tmp_path / "dtype.npz", arrays, meta)
        with pytest.raises(ModelFileError, match=r"buffer 'running_mean2' has dtype"):
            cr.io.load(tmp_path / "dtype.npz")
