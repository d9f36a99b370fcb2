"""``serve --www`` reads a request head in linear work and bounded memory (a 64 MB request
took 168 MB and 36 s of CPU: the whole buffer was searched again after every chunk)."""

from __future__ import annotations

from capdebug.cli._serve import MAX_HTTP_HEAD, HttpHeadReader


def test_one_byte_chunks_are_searched_once_each() -> None:
    head = b"GET / HTTP/1.0\r\n" + b"X-Long: " + b"a" * (MAX_HTTP_HEAD - 100) + b"\r\n\r\n"
    reader = HttpHeadReader()
    fed = 0
    for i in range(len(head)):
        fed += 1
        if reader.feed(head[i : i + 1]):
            break
    assert reader.complete and not reader.too_large
    assert fed == len(head)
    # Each byte is searched at most 4 times (3 bytes of overlap with the previous chunk);
    # the old loop searched the whole buffer each time: len(head)**2 / 2 bytes.
    assert reader.scanned <= 4 * len(head)


def test_a_64_mb_request_is_cut_at_the_limit() -> None:
    reader = HttpHeadReader()
    chunk = b"a" * 65536
    chunks = 0
    for _ in range(1024):  # 64 MB offered
        chunks += 1
        if reader.feed(chunk):
            break
    assert reader.too_large and not reader.complete
    assert chunks == MAX_HTTP_HEAD // len(chunk) + 1
    assert len(reader.head) == MAX_HTTP_HEAD + 1
    assert reader.scanned <= MAX_HTTP_HEAD + 4


def test_the_blank_line_split_across_chunks_is_found() -> None:
    reader = HttpHeadReader()
    assert not reader.feed(b"GET / HTTP/1.0\r\n\r")
    assert reader.feed(b"\nbody")
    assert reader.complete
