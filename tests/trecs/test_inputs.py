"""The rules for untrusted files and names: bounded reads, strict text, outputs apart."""

from __future__ import annotations

import gzip
import os

import pytest

from trecs.display import markup_safe, printable
from trecs.errors import UserError
from trecs.generate import m3u
from trecs.inputs import check_output, loads_json, read_bytes, read_text


def test_reads_are_bounded_while_reading(tmp_path):
    path = tmp_path / "f.json"
    path.write_bytes(b"x" * 100)
    assert read_bytes(path, 100) == b"x" * 100
    with pytest.raises(UserError, match="larger than 99 bytes"):
        read_bytes(path, 99)


def test_gzip_is_unpacked_under_the_same_limit(tmp_path):
    bomb = tmp_path / "sub.csv.gz"
    bomb.write_bytes(gzip.compress(b"0" * 1_000_000))  # ~1 KB packed
    assert os.path.getsize(bomb) < 10_000
    with pytest.raises(UserError, match="unpacked"):
        read_text(bomb, 100_000)
    assert read_text(bomb, 1_000_000) == "0" * 1_000_000
    bomb.write_bytes(gzip.compress(b"abc")[:-6])
    with pytest.raises(UserError, match="truncated"):
        read_text(bomb, 100)


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda p: os.mkfifo(p), "a FIFO"),
        (lambda p: p.symlink_to("/dev/zero"), "a character device"),
        (lambda p: p.mkdir(), "a folder"),
    ],
)
def test_only_regular_files_are_read(tmp_path, make, kind):
    path = tmp_path / "input"
    make(path)
    with pytest.raises(UserError, match=f"{kind}, not an MPD slice"):
        read_bytes(path, 10, "an MPD slice")


def test_text_is_strict_utf8_and_json_bounded(tmp_path):
    path = tmp_path / "t.json"
    path.write_bytes(b'{"name": "caf\xe9"}')
    with pytest.raises(UserError, match="byte 0xe9 at offset 13"):
        read_text(path, 100)
    assert loads_json('{"pid": 9223372036854775807}', "x") == {"pid": 2**63 - 1}
    for text, problem in [
        ('{"pid": 9223372036854775808}', "64-bit"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"pid": 1', "truncated"),
    ]:
        with pytest.raises(UserError, match=problem):
            loads_json(text, "x")


def test_an_output_is_never_an_input_nor_holds_one(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    slice_ = data / "mpd.slice.0-999.json"
    slice_.write_text("{}")
    (tmp_path / "link.json").symlink_to(slice_)
    for output in (slice_, tmp_path / "link.json", data / ".." / "data" / slice_.name, data):
        with pytest.raises(UserError, match="is or holds an input"):
            check_output(output, [slice_], force=True)
    check_output(data / "mpd.db", [slice_], force=False)  # beside an input is fine
    (data / "mpd.db").write_text("")
    with pytest.raises(UserError, match="--force"):
        check_output(data / "mpd.db", [slice_], force=False)


def test_names_never_reach_the_terminal_raw():
    name = "Hit\x1b]0;pwned\x07 \x1b[31mred\x9b2J\nnext [/bold]"
    shown = printable(name)
    assert not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in shown)
    assert shown == "Hit\\x1b]0;pwned\\x07 \\x1b[31mred\\x9b2J\\x0anext [/bold]"
    assert markup_safe(name).endswith("next \\[/bold]")
    track = {"duration_ms": 1000, "artist": "A\x1b[2J", "name": "B\nspotify:track:x", "uri": "u"}
    assert m3u([track]).splitlines() == [
        "#EXTM3U",
        "#EXTINF:1,A\\x1b[2J - B\\x0aspotify:track:x",
        "u",
    ]
