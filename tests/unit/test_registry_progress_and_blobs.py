"""Progress rendering, the decompression cap, reproducible gzip and the layer blob store."""

from __future__ import annotations

import gzip
import hashlib
import io
from pathlib import Path

import pytest
import zstandard

from dockyard.core.errors import ContentError
from dockyard.core.layer_blobs import LayerBlob, LayerBlobStore
from dockyard.core.layer_streams import EXPANSION_FLOOR, Compression, compress_gzip, open_layer, sniff
from dockyard.core.registry.progress import PlainProgress, TerminalProgress, format_bar


def test_bar_is_dockers() -> None:
    assert format_bar(0, 0, width=200, elapsed=0) == "      0B"
    bar = format_bar(1_234_567, 3_456_789, width=200, elapsed=2.0)
    assert bar.startswith("[=================>                                 ]  1.235MB/3.457MB ")
    assert bar.endswith("3s")
    assert format_bar(5, 10, width=80, elapsed=0) == "      5B/10B"  # no bar on narrow terminals
    assert format_bar(20, 10, width=200, elapsed=1).endswith(">]      20B")


def test_plain_progress_prints_status_changes_only() -> None:
    out = io.StringIO()
    progress = PlainProgress(out)
    progress.status("abc", "Pulling fs layer")
    progress.bar("abc", "Downloading", 5, 10)
    progress.message("Digest: sha256:x")
    assert out.getvalue() == "abc: Pulling fs layer\nDigest: sha256:x\n"


def test_terminal_progress_redraws_each_id_on_its_own_line() -> None:
    out = io.StringIO()
    progress = TerminalProgress(out, width=200)
    progress.status("one", "Pulling fs layer")
    progress.status("two", "Pulling fs layer")
    progress.status("one", "Download complete")
    progress.message("done")
    progress.status("three", "Waiting")
    assert out.getvalue() == (
        "\n\x1b[1A\x1b[2K\rone: Pulling fs layer\r\x1b[1B"
        "\n\x1b[1A\x1b[2K\rtwo: Pulling fs layer\r\x1b[1B"
        "\x1b[2A\x1b[2K\rone: Download complete\r\x1b[2B"
        "done\n"
        "\n\x1b[1A\x1b[2K\rthree: Waiting\r\x1b[1B"
    )


def test_decompression_is_capped(tmp_path: Path) -> None:
    bomb = gzip.compress(bytes(EXPANSION_FLOOR + (1 << 20)), compresslevel=9)
    stream = open_layer(io.BytesIO(bomb), Compression.GZIP, compressed_size=0)
    with pytest.raises(ContentError, match="decompression bomb"):
        while stream.read(1 << 20):
            pass
    packed = zstandard.ZstdCompressor().compress(b"hello")
    assert open_layer(io.BytesIO(packed), Compression.ZSTD, compressed_size=len(packed)).read(100) == b"hello"
    truncated = gzip.compress(b"x" * 100_000)[:-20]
    reader = open_layer(io.BytesIO(truncated), Compression.GZIP, compressed_size=1000)
    with pytest.raises(ContentError, match="cannot be decompressed"):
        while reader.read(1 << 20):
            pass
    corrupt = bytearray(gzip.compress(b"y" * 100_000))
    corrupt[12] ^= 0xFF
    with pytest.raises(ContentError, match="cannot be decompressed"):
        open_layer(io.BytesIO(bytes(corrupt)), Compression.GZIP, compressed_size=1000).read(1 << 20)


@pytest.mark.parametrize("padding", [b"", b"\0" * 1000])
def test_multi_member_gzip_with_padding_decodes_whole(padding: bytes) -> None:
    data = bytes(range(256)) * 20_000
    blob = gzip.compress(data[:1000]) + gzip.compress(data[1000:]) + padding
    reader = open_layer(io.BytesIO(blob), Compression.GZIP, compressed_size=len(blob))
    assert b"".join(iter(lambda: reader.read(10240), b"")) == data


def test_a_member_ending_after_a_full_output_read_does_not_repeat_input() -> None:
    """Members larger than one output read: where a member ends after the decoder has stopped at
    its output limit, what follows it must be read once (zlib leaves it in two places)."""
    member = gzip.compress(bytes(4 << 20), mtime=0)
    blob = gzip.compress(b"x" * 512, mtime=0) + member * 4
    reader = open_layer(io.BytesIO(blob), Compression.GZIP, compressed_size=len(blob))
    total = 0
    while chunk := reader.read(1 << 20):
        total += len(chunk)
    assert total == 512 + 4 * (4 << 20)


def test_reproducible_gzip_and_sniffing(tmp_path: Path) -> None:
    source = tmp_path / "layer.tar"
    source.write_bytes(b"tar bytes" * 1000)
    first, second = tmp_path / "a.gz", tmp_path / "b.gz"
    compress_gzip(source, first)
    compress_gzip(source, second)
    assert first.read_bytes() == second.read_bytes()
    assert gzip.decompress(first.read_bytes()) == source.read_bytes()
    assert (sniff(first), sniff(source)) == (Compression.GZIP, Compression.NONE)


def _blob(tmp_path: Path, data: bytes, diff_id: str, compression: Compression) -> tuple[Path, LayerBlob]:
    staged = tmp_path / hashlib.sha256(data).hexdigest()
    staged.write_bytes(data)
    return staged, LayerBlob("sha256:" + hashlib.sha256(data).hexdigest(), len(data), compression, diff_id)


def test_layer_blob_store_adopts_prefers_compressed_and_collects(tmp_path: Path) -> None:
    store = LayerBlobStore(tmp_path / "store")
    diff_id = "sha256:" + "d" * 64
    plain_path, plain = _blob(tmp_path, b"plain tar", diff_id, Compression.NONE)
    packed_path, packed = _blob(tmp_path, b"gzip bytes", diff_id, Compression.GZIP)
    store.adopt(plain_path, plain)
    store.adopt(packed_path, packed, source="registry.example/app")
    assert not plain_path.exists() and store.path(plain).read_bytes() == b"plain tar"
    assert store.for_diff_id(diff_id) == [packed, plain]
    store.add_source(packed.digest, "registry.example/other")
    assert store.sources(packed.digest) == ["registry.example/app", "registry.example/other"]
    (store.home / "sha256" / ("e" * 64)).write_bytes(b"left by a killed command")
    assert store.collect({diff_id}) == len(b"left by a killed command")
    assert store.for_diff_id(diff_id) == [packed, plain]
    assert store.collect(set()) == len(b"plain tar") + len(b"gzip bytes")
    assert store.for_diff_id(diff_id) == [] and store.get(packed.digest) is None
