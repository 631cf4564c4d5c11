"""Tests for chainrule._fileformat: the safe, atomic archive behind model files and
checkpoints."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import pickle
import zipfile

import numpy as np
import pytest

from chainrule import _fileformat
from chainrule._fileformat import FORMAT_VERSION, ModelFileError, read_archive, write_archive

META_ENTRY = "__chainrule__.json"


def _sample_arrays():
    rng = np.random.default_rng(0)
    return {
        "W1": rng.standard_normal((4, 3)),
        "b1": rng.standard_normal(3).astype(np.float32),
        "steps": np.array(7, dtype=np.int64),
        "mask": np.array([True, False, True]),
        "empty": np.zeros((0, 5)),
        # A transposed view is not C-contiguous; it must still round-trip by value.
        "WT": rng.standard_normal((3, 2)).T,
        "big_endian": np.arange(4, dtype=">f8"),
        "names": np.array(["a", "bc"]),
    }


def _sample_meta():
    return {"kind": "MLP", "config": {"layer_sizes": [4, 3], "dropout": 0.0},
            "note": "ünïcode ✓", "nan": float("nan"), "none": None, "tuple": (1, 2)}


def _entries(path):
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _write_entries(path, entries):
    # Re-zip by hand: zipfile recomputes every CRC, so only chainrule's own checks
    # can notice what was changed.
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)


def _npy_bytes(arr, allow_pickle=False):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def test_round_trip_keeps_values_dtypes_shapes_and_meta(tmp_path):
    path = tmp_path / "model.npz"
    arrays = _sample_arrays()
    write_archive(path, arrays, _sample_meta())
    loaded, meta = read_archive(path)
    assert sorted(loaded) == sorted(arrays)
    for key, arr in arrays.items():
        assert loaded[key].dtype == arr.dtype, key
        assert loaded[key].shape == arr.shape, key
        np.testing.assert_array_equal(loaded[key], arr)
    assert meta["kind"] == "MLP"
    assert meta["config"] == {"layer_sizes": [4, 3], "dropout": 0.0}
    assert meta["note"] == "ünïcode ✓"
    assert np.isnan(meta["nan"]) and meta["none"] is None
    assert meta["tuple"] == [1, 2]  # JSON has no tuples


def test_file_is_a_plain_npz_readable_by_numpy(tmp_path):
    path = tmp_path / "m.npz"
    write_archive(str(path), {"W": np.eye(2)}, {})
    with np.load(path, allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["W"], np.eye(2))
        header = json.loads(npz.zip.read(META_ENTRY))
    assert header["format"] == "chainrule"
    assert header["format_version"] == FORMAT_VERSION == 1
    assert header["checksum"].startswith("sha256:")


def test_checksum_is_the_documented_sha256(tmp_path):
    # Restate the documented checksum independently: for each array in sorted name
    # order the length-prefixed name, dtype string, shape and C-order bytes, then the
    # canonical JSON of meta.
    path = tmp_path / "m.npz"
    arrays = {"b": np.array([1.5, -2.0], dtype=np.float32), "a": np.arange(6).reshape(2, 3)}
    meta = {"z": 1, "a": [True, None]}
    write_archive(path, arrays, meta)

    h = hashlib.sha256()
    for data in [b"a", np.dtype(int).str.encode(), b"2,3", arrays["a"].tobytes(),
                 b"b", b"<f4", b"2", arrays["b"].tobytes(),
                 b'{"a":[true,null],"z":1}']:
        h.update(len(data).to_bytes(8, "little") + data)
    header = json.loads(_entries(path)[META_ENTRY])
    assert header["checksum"] == "sha256:" + h.hexdigest()


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="no such file") as info:
        read_archive(tmp_path / "absent.npz")
    assert "absent.npz" in str(info.value)


def test_model_file_error_is_a_value_error():
    assert issubclass(ModelFileError, ValueError)


def test_not_a_zip(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("hello, I am not a model\n")
    with pytest.raises(ModelFileError, match="not a zip") as info:
        read_archive(text)
    assert "notes.npz" in str(info.value)

    npy = tmp_path / "plain.npy"
    np.save(npy, np.eye(3))
    with pytest.raises(ModelFileError, match="not a zip"):
        read_archive(npy)


def test_directory_is_refused(tmp_path):
    with pytest.raises(ModelFileError, match="not a regular file"):
        read_archive(tmp_path)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.99])
def test_truncated_file(tmp_path, fraction):
    path = tmp_path / "m.npz"
    write_archive(path, _sample_arrays(), _sample_meta())
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])
    with pytest.raises(ModelFileError, match="m.npz"):
        read_archive(path)


def test_every_truncation_is_refused(tmp_path):
    path = tmp_path / "m.npz"
    write_archive(path, {"W": np.arange(3.0)}, {"k": 1})
    data = path.read_bytes()
    for n in range(len(data)):
        path.write_bytes(data[:n])
        with pytest.raises(ModelFileError):
            read_archive(path)


def test_every_flipped_byte_is_refused_or_harmless(tmp_path):
    # A flipped byte anywhere in the file either raises ModelFileError or lands in a
    # field that does not change the content (zip timestamps, "version made by", ...);
    # it never yields different arrays or metadata and never raises anything else.
    path = tmp_path / "m.npz"
    arrays = {"W": np.arange(6.0).reshape(2, 3), "b": np.array([0.5, -1.0])}
    write_archive(path, arrays, {"k": 1})
    data = path.read_bytes()
    refused = 0
    for i in range(len(data)):
        flipped = bytearray(data)
        flipped[i] ^= 0x55
        path.write_bytes(bytes(flipped))
        try:
            loaded, meta = read_archive(path)
        except ModelFileError:
            refused += 1
            continue
        assert meta == {"k": 1}, i
        assert sorted(loaded) == ["W", "b"], i
        for key in arrays:
            np.testing.assert_array_equal(loaded[key], arrays[key])
            assert loaded[key].dtype == arrays[key].dtype
    # Every byte of the array data and of the JSON header is covered by a check.
    assert refused > len(data) // 2


def test_flipped_data_byte_in_re_zipped_file_fails_the_checksum(tmp_path):
    path = tmp_path / "m.npz"
    write_archive(path, {"W": np.arange(6.0).reshape(2, 3)}, {"k": 1})
    entries = _entries(path)
    raw = bytearray(entries["W.npy"])
    raw[-3] ^= 0x01  # inside the last float's bytes, after the .npy header
    entries["W.npy"] = bytes(raw)
    _write_entries(path, entries)
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        read_archive(path)


def test_edited_meta_fails_the_checksum(tmp_path):
    path = tmp_path / "m.npz"
    write_archive(path, {"W": np.zeros(2)}, {"learning_rate": 0.01})
    entries = _entries(path)
    header = json.loads(entries[META_ENTRY])
    header["meta"]["learning_rate"] = 10.0
    entries[META_ENTRY] = json.dumps(header).encode()
    _write_entries(path, entries)
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        read_archive(path)


def test_removed_array_fails_the_checksum(tmp_path):
    path = tmp_path / "m.npz"
    write_archive(path, {"W": np.zeros(2), "b": np.ones(1)}, {})
    entries = _entries(path)
    del entries["b.npy"]
    _write_entries(path, entries)
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        read_archive(path)


@pytest.mark.parametrize("version", [2, 0, "1", None, True])
def test_unknown_version(tmp_path, version):
    path = tmp_path / "m.npz"
    write_archive(path, {"W": np.zeros(2)}, {})
    entries = _entries(path)
    header = json.loads(entries[META_ENTRY])
    header["format_version"] = version
    entries[META_ENTRY] = json.dumps(header).encode()
    _write_entries(path, entries)
    with pytest.raises(ModelFileError, match="unknown format version") as info:
        read_archive(path)
    assert repr(version) in str(info.value)
    if version == 2:
        assert "newer chainrule" in str(info.value)


def test_wrong_format_name(tmp_path):
    path = tmp_path / "m.npz"
    write_archive(path, {"W": np.zeros(2)}, {})
    entries = _entries(path)
    header = json.loads(entries[META_ENTRY])
    header["format"] = "something-else"
    entries[META_ENTRY] = json.dumps(header).encode()
    _write_entries(path, entries)
    with pytest.raises(ModelFileError, match="does not declare format 'chainrule'"):
        read_archive(path)


def test_missing_metadata(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, W=np.eye(2))
    with pytest.raises(ModelFileError, match="missing the metadata entry"):
        read_archive(path)


def test_corrupt_metadata_json(tmp_path):
    path = tmp_path / "m.npz"
    write_archive(path, {"W": np.zeros(2)}, {})
    entries = _entries(path)
    entries[META_ENTRY] = b"{not json"
    _write_entries(path, entries)
    with pytest.raises(ModelFileError, match="metadata entry is corrupt"):
        read_archive(path)


def test_unexpected_entry_is_refused(tmp_path):
    path = tmp_path / "m.npz"
    write_archive(path, {"W": np.zeros(2)}, {})
    entries = _entries(path)
    entries["payload.pkl"] = pickle.dumps({"x": 1})
    _write_entries(path, entries)
    with pytest.raises(ModelFileError, match="unexpected entries"):
        read_archive(path)


class _Trap:
    """Unpickling this creates a marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def _archive_with_entry(path, name, data):
    write_archive(path, {"W": np.zeros(2)}, {})
    entries = _entries(path)
    entries[name] = data
    _write_entries(path, entries)


def test_pickled_object_array_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "code-ran"
    obj = np.empty(1, dtype=object)
    obj[0] = _Trap(marker)
    path = tmp_path / "m.npz"
    _archive_with_entry(path, "W.npy", _npy_bytes(obj, allow_pickle=True))
    with pytest.raises(ModelFileError, match="pickled data") as info:
        read_archive(path)
    assert "'W'" in str(info.value)
    assert not marker.exists()


def test_raw_pickle_disguised_as_npy_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "m.npz"
    _archive_with_entry(path, "W.npy", pickle.dumps(_Trap(marker)))
    with pytest.raises(ModelFileError, match="not a .npy array"):
        read_archive(path)
    assert not marker.exists()


def test_write_refuses_object_arrays(tmp_path):
    path = tmp_path / "m.npz"
    with pytest.raises(TypeError, match=r"arrays\['bad'\].*object"):
        write_archive(path, {"bad": np.array([{"a": 1}], dtype=object)}, {})
    with pytest.raises(TypeError, match="object"):
        write_archive(path, {"ragged": np.array([[1], [1, 2]], dtype=object)}, {})
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("arrays, exc, match", [
    ([("W", np.zeros(2))], TypeError, "arrays must be a dict"),
    ({1: np.zeros(2)}, TypeError, "arrays keys must be str"),
    ({"": np.zeros(2)}, ValueError, "not allowed"),
    ({META_ENTRY: np.zeros(2)}, ValueError, "reserved"),
    ({"__chainrule__": np.zeros(2)}, ValueError, "reserved"),
])
def test_write_refuses_bad_array_names(tmp_path, arrays, exc, match):
    with pytest.raises(exc, match=match):
        write_archive(tmp_path / "m.npz", arrays, {})
    assert list(tmp_path.iterdir()) == []


def test_write_refuses_non_json_meta(tmp_path):
    with pytest.raises(TypeError, match="meta must be a dict"):
        write_archive(tmp_path / "m.npz", {}, [1, 2])
    with pytest.raises(TypeError, match="JSON-serialisable"):
        write_archive(tmp_path / "m.npz", {}, {"f": object()})
    with pytest.raises(TypeError, match="JSON-serialisable"):
        write_archive(tmp_path / "m.npz", {}, {"arr": np.zeros(2)})
    assert list(tmp_path.iterdir()) == []


def test_bad_path_types():
    with pytest.raises(TypeError, match="path must be a str or os.PathLike, got int"):
        write_archive(3, {}, {})
    with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
        read_archive(None)
    with pytest.raises(ValueError, match="non-empty"):
        read_archive("")


def test_overwrite_replaces_the_old_file(tmp_path):
    path = tmp_path / "m.npz"
    write_archive(path, {"W": np.zeros(2)}, {"v": 1})
    write_archive(path, {"W": np.ones(3)}, {"v": 2})
    arrays, meta = read_archive(path)
    np.testing.assert_array_equal(arrays["W"], np.ones(3))
    assert meta == {"v": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def test_permissions_match_a_plain_open(tmp_path):
    path = tmp_path / "m.npz"
    write_archive(path, {"W": np.zeros(2)}, {})
    reference = tmp_path / "ref"
    reference.write_bytes(b"")
    if os.name == "posix":
        assert path.stat().st_mode & 0o777 == reference.stat().st_mode & 0o777


def _assert_old_file_intact(tmp_path, path):
    arrays, meta = read_archive(path)
    np.testing.assert_array_equal(arrays["W"], np.arange(3.0))
    assert meta == {"version": "old"}
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "temporary file left behind"


def test_failed_rename_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    write_archive(path, {"W": np.arange(3.0)}, {"version": "old"})

    def broken_replace(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(_fileformat.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        write_archive(path, {"W": np.zeros(10)}, {"version": "new"})
    monkeypatch.undo()
    _assert_old_file_intact(tmp_path, path)


@pytest.mark.parametrize("error", [RuntimeError("array write failed"), KeyboardInterrupt()])
def test_failure_while_writing_arrays_leaves_old_file_and_no_temp(tmp_path, monkeypatch,
                                                                   error):
    path = tmp_path / "m.npz"
    write_archive(path, {"W": np.arange(3.0)}, {"version": "old"})
    real_write_array = np.lib.format.write_array
    calls = []

    def failing_write_array(fh, arr, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the first array was already written to the temp file
            raise error
        return real_write_array(fh, arr, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", failing_write_array)
    with pytest.raises(type(error)):
        write_archive(path, {"W": np.zeros(10), "b": np.zeros(4)}, {"version": "new"})
    monkeypatch.undo()
    assert len(calls) == 2
    _assert_old_file_intact(tmp_path, path)


def test_failed_first_write_creates_nothing(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"

    def failing_fsync(fd):
        raise OSError("fsync failed")

    monkeypatch.setattr(_fileformat.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="fsync failed"):
        write_archive(path, {"W": np.zeros(2)}, {})
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_missing_directory_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="directory .*no-such-dir.* does not exist"):
        write_archive(tmp_path / "no-such-dir" / "m.npz", {"W": np.zeros(2)}, {})


def test_a_directory_destination_is_refused_before_a_temporary_file_exists(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("x")
    for write in (lambda: write_archive(target, {"a": np.zeros(2)}, {}),
                  lambda: _fileformat.atomic_write(target, lambda fh: fh.write(b"x"))):
        with pytest.raises(IsADirectoryError) as err:
            write()
        message = str(err.value)
        assert str(target) in message and "is a directory" in message
        assert ".tmp" not in message  # not the name of a temporary file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert [p.name for p in target.iterdir()] == ["keep.txt"]


def test_write_archive_through_a_symlink_replaces_the_target_not_the_link(tmp_path):
    # Checkpoints are written by write_archive directly, so the link handling lives here.
    target = tmp_path / "real.npz"
    link = tmp_path / "link.npz"
    _fileformat.write_archive(target, {"a": np.zeros(2)}, {"n": 1})
    link.symlink_to(target)
    _fileformat.write_archive(link, {"a": np.ones(3)}, {"n": 2})
    assert link.is_symlink()
    arrays, meta = _fileformat.read_archive(target)
    assert np.array_equal(arrays["a"], np.ones(3)) and meta == {"n": 2}
