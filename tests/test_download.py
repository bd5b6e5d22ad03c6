"""Tests of ffnn_jax._download against a local HTTP server (127.0.0.1 only) serving small IDX fixtures.

No test reaches the internet, the real per-user cache or the system's dpkg database: an autouse
fixture points all of them into tmp_path.
"""

import gzip
import hashlib
import http.server
import os
import socket
import struct
import threading
import time

import numpy as np
import pytest

from ffnn_jax import _download
from ffnn_jax._download import (
    BASE_URLS,
    CLASS_NAMES,
    FILES,
    SHA256,
    ChecksumError,
    DatasetNotFoundError,
    cache_folder,
    load_official,
    system_folders,
)


N_TRAIN, N_TEST = 20, 12
MAX_REQUESTS = 50  # the server answers at most this many requests per test


def _idx(array: np.ndarray) -> bytes:
    magic = bytes([0, 0, 0x08, array.ndim])
    return magic + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


def _make_arrays():
    rng = np.random.default_rng(0)
    return {
        "train": (rng.integers(0, 256, (N_TRAIN, 28, 28)), np.arange(N_TRAIN) % 10),
        "test": (rng.integers(0, 256, (N_TEST, 28, 28)), (np.arange(N_TEST) * 3) % 10),
    }


ARRAYS = _make_arrays()
PLAIN = {gz: _idx(array) for split, pair in FILES.items() for gz, array in zip(pair, ARRAYS[split])}
GZ = {gz: gzip.compress(data, mtime=0) for gz, data in PLAIN.items()}
DIGESTS = {gz: hashlib.sha256(data).hexdigest() for gz, data in GZ.items()}


class _Handler(http.server.BaseHTTPRequestHandler):
    """Routes ``/<mode>/<file>``: good, corrupt (one byte changed), truncated (Content-Length larger
    than the body, then close), stall (headers, then silence), and anything else 404."""

    timeout = 5  # socket timeout of each connection on the server side

    def do_GET(self):
        self.server.requests.append(self.path)
        if len(self.server.requests) > MAX_REQUESTS:
            self.send_error(503)
            return
        mode, _, name = self.path.strip("/").partition("/")
        body = GZ.get(name)
        if body is None or mode not in ("good", "corrupt", "truncated", "stall"):
            self.send_error(404, "Not Found")
            return
        if mode == "corrupt":
            body = body[:-1] + bytes([body[-1] ^ 0xFF])
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body) + (1000 if mode == "truncated" else 0)))
        self.end_headers()
        if mode == "stall":
            time.sleep(1.0)
            return
        self.wfile.write(body if mode != "truncated" else body[: len(body) // 2])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, format, *args):
        del format, args


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture
def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Cache in tmp_path, no mirror variable, an empty dpkg database and no dpkg program."""
    monkeypatch.setenv("FFNN_JAX_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("FFNN_JAX_DATA_MIRROR", raising=False)
    (tmp_path / "dpkg-info").mkdir()
    monkeypatch.setattr(_download, "_DPKG_INFO_DIR", str(tmp_path / "dpkg-info"))
    monkeypatch.setattr(_download, "_DPKG_COMMAND", None)


def _load(split="train", **kwargs):
    kwargs.setdefault("checksums", DIGESTS)
    kwargs.setdefault("progress", False)
    kwargs.setdefault("timeout", 5.0)
    return load_official("fashion_mnist", split, **kwargs)


def _assert_arrays(x, y, split):
    images, labels = ARRAYS[split]
    assert x.dtype == np.float32 and x.shape == (len(images), 784)
    assert 0.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_array_equal(x, images.reshape(len(images), -1).astype(np.float32) / 255.0)
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, labels)


def _write(folder, names, plain=False):
    folder.mkdir(parents=True, exist_ok=True)
    for gz in names:
        (folder / (gz[:-3] if plain else gz)).write_bytes(PLAIN[gz] if plain else GZ[gz])


def test_download_into_data_dir_loads_the_right_arrays_and_keeps_only_the_files(tmp_path, server):
    data_dir = tmp_path / "data"
    x, y = _load(data_dir=str(data_dir), mirror=server.url + "/good/")
    _assert_arrays(x, y, "train")
    assert sorted(os.listdir(data_dir)) == sorted(FILES["train"])
    assert sorted(server.requests) == sorted(f"/good/{gz}" for gz in FILES["train"])


def test_a_second_call_uses_the_downloaded_files_without_a_request(tmp_path, server):
    data_dir = str(tmp_path / "data")
    _load(data_dir=data_dir, mirror=server.url + "/good")
    count = len(server.requests)
    x, y = _load(data_dir=data_dir, mirror=server.url + "/good")
    assert len(server.requests) == count == 2
    _assert_arrays(x, y, "train")


def test_the_test_split_reads_the_t10k_files(tmp_path, server):
    x, y = _load("test", data_dir=str(tmp_path / "data"), mirror=server.url + "/good/")
    _assert_arrays(x, y, "test")
    assert sorted(server.requests) == sorted(f"/good/{gz}" for gz in FILES["test"])


def test_a_checksum_mismatch_is_a_value_error_naming_file_and_digests_and_keeps_nothing(tmp_path, server):
    data_dir = tmp_path / "data"
    with pytest.raises(ChecksumError) as info:
        _load(data_dir=str(data_dir), mirror=server.url + "/corrupt/")
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message and DIGESTS["train-images-idx3-ubyte.gz"] in message
    corrupt = GZ["train-images-idx3-ubyte.gz"][:-1] + bytes([GZ["train-images-idx3-ubyte.gz"][-1] ^ 0xFF])
    assert hashlib.sha256(corrupt).hexdigest() in message
    assert os.listdir(data_dir) == []


def test_a_truncated_response_is_an_error_and_leaves_no_partial_file(tmp_path, server):
    data_dir = tmp_path / "data"
    with pytest.raises(DatasetNotFoundError, match="truncated response"):
        _load(data_dir=str(data_dir), mirror=server.url + "/truncated/")
    assert os.listdir(data_dir) == []


def test_a_stalled_response_times_out_and_leaves_no_partial_file(tmp_path, server):
    data_dir = tmp_path / "data"
    with pytest.raises(DatasetNotFoundError, match="timed out"):
        _load(data_dir=str(data_dir), mirror=server.url + "/stall/", timeout=0.3)
    assert os.listdir(data_dir) == []


def test_a_404_is_an_error_naming_the_url(tmp_path, server):
    data_dir = tmp_path / "data"
    with pytest.raises(DatasetNotFoundError) as info:
        _load(data_dir=str(data_dir), mirror=server.url + "/missing/")
    assert f"{server.url}/missing/train-images-idx3-ubyte.gz: HTTP 404" in str(info.value)
    assert os.listdir(data_dir) == []


def test_ctrl_c_during_a_download_leaves_no_partial_file(tmp_path, server, monkeypatch):
    data_dir = tmp_path / "data"
    original = _download._copy_url

    def interrupted(url, out, **kwargs):
        out.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(_download, "_copy_url", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _load(data_dir=str(data_dir), mirror=server.url + "/good/")
    assert os.listdir(data_dir) == []
    monkeypatch.setattr(_download, "_copy_url", original)
    _assert_arrays(*_load(data_dir=str(data_dir), mirror=server.url + "/good/"), "train")


def test_offline_with_nothing_found_says_where_it_looked_and_how_to_get_the_files(tmp_path, closed_port_url):
    with pytest.raises(DatasetNotFoundError) as info:
        _load(mirror=closed_port_url)
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    assert str(tmp_path / "cache" / "fashion_mnist") in message
    assert "dataset-fashion-mnist: not installed" in message
    assert closed_port_url + "train-images-idx3-ubyte.gz: cannot connect" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "--data_dir DIR" in message and "FFNN_JAX_DATA_MIRROR" in message
    assert os.listdir(tmp_path / "cache" / "fashion_mnist") == []


def test_download_false_with_nothing_found_downloads_nothing(tmp_path, server):
    data_dir = tmp_path / "data"
    with pytest.raises(DatasetNotFoundError, match=r"data_dir\)") as info:
        _load(data_dir=str(data_dir), download=False, mirror=server.url + "/good/")
    assert "download=False" in str(info.value)
    assert server.requests == [] and not data_dir.exists()


def test_the_next_base_url_is_tried_when_one_fails(tmp_path, server, closed_port_url, monkeypatch):
    monkeypatch.setitem(BASE_URLS, "fashion_mnist", (closed_port_url, server.url + "/missing/", server.url + "/good/"))
    _assert_arrays(*_load(data_dir=str(tmp_path / "data")), "train")


def test_the_mirror_comes_from_the_environment(tmp_path, server, monkeypatch):
    monkeypatch.setenv("FFNN_JAX_DATA_MIRROR", server.url + "/good/")
    _assert_arrays(*_load("test"), "test")
    assert sorted(os.listdir(tmp_path / "cache" / "fashion_mnist")) == sorted(FILES["test"])


def test_the_cache_folder_follows_ffnn_jax_data_dir_then_xdg_cache_home_then_home(tmp_path, monkeypatch):
    assert cache_folder("mnist") == str(tmp_path / "cache" / "mnist")
    monkeypatch.delenv("FFNN_JAX_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_folder("mnist") == str(tmp_path / "xdg" / "ffnn_jax" / "mnist")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_folder("mnist") == str(tmp_path / "home" / ".cache" / "ffnn_jax" / "mnist")


def test_downloads_go_to_the_xdg_cache_and_are_found_there_next_time(tmp_path, server, monkeypatch):
    monkeypatch.delenv("FFNN_JAX_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    _load(mirror=server.url + "/good/")
    assert sorted(os.listdir(tmp_path / "xdg" / "ffnn_jax" / "fashion_mnist")) == sorted(FILES["train"])
    _assert_arrays(*_load(download=False), "train")
    assert len(server.requests) == 2


def test_files_in_the_ffnn_jax_data_dir_cache_are_used_offline(tmp_path):
    _write(tmp_path / "cache" / "fashion_mnist", FILES["test"])
    _assert_arrays(*_load("test", download=False), "test")


def test_plain_uncompressed_files_in_data_dir_are_accepted(tmp_path):
    _write(tmp_path / "data", FILES["train"], plain=True)
    _assert_arrays(*_load(data_dir=str(tmp_path / "data"), download=False), "train")


def test_only_the_missing_file_is_downloaded(tmp_path, server):
    _write(tmp_path / "data", FILES["train"][:1], plain=True)
    _assert_arrays(*_load(data_dir=str(tmp_path / "data"), mirror=server.url + "/good/"), "train")
    assert server.requests == [f"/good/{FILES['train'][1]}"]


def _fake_debian_copy(tmp_path):
    """A copy of the IDX files where the fake package list says, with the list's usual entries."""
    folder = tmp_path / "system" / "usr" / "share" / "datasets" / "fashion-mnist"
    _write(folder, [gz for pair in FILES.values() for gz in pair])
    listed = ["/.", "/usr", str(folder.parent), str(folder), "/usr/share/doc/dataset-fashion-mnist/README.md.gz"]
    listed += [str(folder / gz) for pair in FILES.values() for gz in pair]
    return folder, "\n".join(listed) + "\n"


@pytest.mark.parametrize("list_name", ["dataset-fashion-mnist.list", "dataset-fashion-mnist:amd64.list"])
def test_the_system_copy_is_found_through_the_dpkg_file_list(tmp_path, list_name):
    folder, listing = _fake_debian_copy(tmp_path)
    (tmp_path / "dpkg-info" / list_name).write_text(listing)
    assert system_folders("fashion_mnist") == (str(folder),)
    assert system_folders("mnist") == ()
    _assert_arrays(*_load("test", download=False), "test")


def test_the_system_copy_is_found_through_dpkg_minus_l_without_a_list_file(tmp_path, monkeypatch):
    folder, listing = _fake_debian_copy(tmp_path)
    (tmp_path / "listing.txt").write_text(listing)
    fake_dpkg = tmp_path / "fake-dpkg"
    fake_dpkg.write_text(
        f'#!/bin/sh\n[ "$1" = -L ] && [ "$2" = dataset-fashion-mnist ] && cat {tmp_path}/listing.txt\n'
    )
    fake_dpkg.chmod(0o755)
    monkeypatch.setattr(_download, "_DPKG_COMMAND", str(fake_dpkg))
    assert system_folders("fashion_mnist") == (str(folder),)
    _assert_arrays(*_load(download=False), "train")


def test_the_cache_comes_before_the_system_copy(tmp_path):
    _, listing = _fake_debian_copy(tmp_path)
    (tmp_path / "dpkg-info" / "dataset-fashion-mnist.list").write_text(listing)
    cache = tmp_path / "cache" / "fashion_mnist"
    cache.mkdir(parents=True)
    images, labels = ARRAYS["train"]
    (cache / "train-images-idx3-ubyte").write_bytes(_idx(255 - images))
    (cache / "train-labels-idx1-ubyte").write_bytes(_idx(labels))
    x, _ = _load(download=False)
    np.testing.assert_array_equal(x, (255 - images).reshape(N_TRAIN, -1).astype(np.float32) / 255.0)


def test_a_download_draws_a_progress_bar_on_stderr_unless_disabled(tmp_path, server, capsys):
    pytest.importorskip("tqdm")
    _load(data_dir=str(tmp_path / "a"), mirror=server.url + "/good/", progress=True)
    assert "train-images-idx3-ubyte.gz" in capsys.readouterr().err
    _load(data_dir=str(tmp_path / "b"), mirror=server.url + "/good/", progress=False)
    assert capsys.readouterr().err == ""


def test_the_official_tables_cover_the_eight_files():
    assert set(SHA256) == set(BASE_URLS) == set(CLASS_NAMES) == {"fashion_mnist", "mnist"}
    for name, digests in SHA256.items():
        assert sorted(digests) == sorted(gz for pair in FILES.values() for gz in pair)
        assert all(len(d) == 64 and int(d, 16) >= 0 for d in digests.values())
        assert all(base.endswith("/") for base in BASE_URLS[name])
    assert len({d for digests in SHA256.values() for d in digests.values()}) == 8
    assert len(CLASS_NAMES["fashion_mnist"]) == len(CLASS_NAMES["mnist"]) == 10


def test_the_default_checksums_reject_a_file_that_is_not_official(tmp_path, server):
    with pytest.raises(ChecksumError, match=SHA256["fashion_mnist"]["train-images-idx3-ubyte.gz"]):
        load_official("fashion_mnist", data_dir=str(tmp_path / "d"), mirror=server.url + "/good/", progress=False)
    assert os.listdir(tmp_path / "d") == []


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(name="cifar10"), "`name` must be one of"),
        (dict(name="mnist", split="validation"), "`split` must be one of"),
        (dict(name="mnist", checksums={}), "`checksums` has no SHA-256"),
    ],
    ids=["name", "split", "checksums"],
)
def test_bad_arguments_are_value_errors(tmp_path, closed_port_url, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_official(**kwargs, data_dir=str(tmp_path / "d"), mirror=closed_port_url, progress=False)


def test_a_file_that_is_not_28x28_images_is_a_value_error_naming_it(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "train-images-idx3-ubyte").write_bytes(_idx(np.zeros((3, 8, 8))))
    (folder / "train-labels-idx1-ubyte").write_bytes(_idx(np.zeros(3)))
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.*28, 28"):
        _load(data_dir=str(folder), download=False)
