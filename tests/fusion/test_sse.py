from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fusion.sse import SseDecoder, SseError, SseEvent


def decode(*chunks: bytes) -> list[SseEvent]:
    decoder = SseDecoder()
    events = [e for chunk in chunks for e in decoder.feed(chunk)]
    decoder.close()
    return events


def test_it_decodes_one_event():
    assert decode(b"data: hello\n\n") == [SseEvent(data="hello")]


def test_it_joins_multiline_data_with_newlines():
    assert decode(b"data: a\ndata:\ndata: c\n\n") == [SseEvent(data="a\n\nc")]


def test_it_reads_event_and_keeps_the_last_id_across_events():
    events = decode(b"event: ping\nid: 7\ndata: x\n\ndata: y\n\n")
    assert events == [SseEvent(data="x", event="ping", id="7"), SseEvent(data="y", id="7")]


def test_it_ignores_an_id_containing_nul():
    assert decode(b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n")[1].id == "1"


def test_it_ignores_comment_lines():
    stream = b": OPENROUTER PROCESSING\n\n: ping\ndata: {}\n\n"
    assert decode(stream) == [SseEvent(data="{}")]


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"])
def test_it_accepts_every_line_end(end: bytes):
    stream = b"event: e" + end + b"data: 1" + end + b"data: 2" + end + end
    assert decode(stream) == [SseEvent(data="1\n2", event="e")]


def test_it_treats_crlf_split_across_chunks_as_one_line_end():
    # Read as two line ends, the \n would be a blank line dispatching "a" on its own.
    assert decode(b"data: a\r", b"\ndata: b\r\n\r\n") == [SseEvent(data="a\nb")]


def test_it_strips_only_one_space_after_the_colon():
    assert decode(b"data:  x\n\ndata:y\n\n") == [SseEvent(data=" x"), SseEvent(data="y")]


def test_it_treats_a_field_without_colon_as_empty():
    assert decode(b"data\n\n") == [SseEvent(data="")]


def test_it_does_not_dispatch_an_event_without_data():
    assert decode(b"event: nothing\n\ndata: real\n\n") == [SseEvent(data="real")]


def test_it_decodes_utf8_split_inside_a_character():
    stream = "data: héllo 😀 wörld\n\n".encode()
    assert decode(*(stream[i : i + 1] for i in range(len(stream)))) == [
        SseEvent(data="héllo 😀 wörld")
    ]


def test_it_drops_a_leading_bom_even_when_split():
    stream = b"\xef\xbb\xbfdata: x\n\n"
    assert decode(stream[:2], stream[2:]) == [SseEvent(data="x")]


def test_it_discards_an_unterminated_event_at_close():
    decoder = SseDecoder()
    assert decoder.feed(b"data: done\n\ndata: cut") == [SseEvent(data="done")]
    decoder.close()
    with pytest.raises(SseError):
        decoder.feed(b"\n\n")


def test_it_parses_retry_and_ignores_unknown_fields():
    assert decode(b"retry: 1500\nfoo: bar\ndata: x\n\n") == [SseEvent(data="x", retry=1500)]


def test_it_rejects_an_endless_line():
    decoder = SseDecoder(max_line_chars=100)
    with pytest.raises(SseError):
        decoder.feed(b"data: " + b"x" * 200)


# --- properties ---------------------------------------------------------------------------

_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"),
    max_size=20,
)
_events = st.lists(
    st.builds(
        SseEvent,
        data=st.lists(_text, min_size=1, max_size=3).map("\n".join),
        event=st.sampled_from(["message", "ping", "content_block_delta"]),
        id=st.text(alphabet="abc123", max_size=4),
        retry=st.none(),
    ),
    max_size=6,
)


def _encode(events: list[SseEvent], line_end: str, comments: bool) -> bytes:
    out = []
    for e in events:
        if comments:
            out.append(f": keep-alive{line_end}")
        if e.event != "message":
            out.append(f"event: {e.event}{line_end}")
        out.append(f"id: {e.id}{line_end}")
        out.extend(f"data: {line}{line_end}" for line in e.data.split("\n"))
        out.append(line_end)
    return "".join(out).encode()


@settings(max_examples=150, deadline=None)
@given(
    events=_events,
    line_end=st.sampled_from(["\n", "\r\n", "\r"]),
    comments=st.booleans(),
    data=st.data(),
)
def test_it_decodes_any_chunking_of_a_stream_to_the_original_events(
    events: list[SseEvent], line_end: str, comments: bool, data: st.DataObject
):
    stream = _encode(events, line_end, comments)
    cuts = sorted(data.draw(st.sets(st.integers(0, len(stream)), max_size=12)))
    bounds = [0, *cuts, len(stream)]
    chunks = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    assert decode(*chunks) == decode(stream) == events


@settings(max_examples=150, deadline=None)
@given(stream=st.binary(max_size=200), data=st.data())
def test_it_gives_the_same_events_for_any_chunking_of_arbitrary_bytes(
    stream: bytes, data: st.DataObject
):
    cuts = sorted(data.draw(st.sets(st.integers(0, len(stream)), max_size=10)))
    bounds = [0, *cuts, len(stream)]
    assert decode(*(stream[a:b] for a, b in itertools.pairwise(bounds))) == decode(stream)
