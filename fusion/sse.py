"""Incremental Server-Sent Events decoder: bytes in, events out, for any split of the stream.

Follows the WHATWG "event stream interpretation" rules: UTF-8 (a leading BOM is dropped),
``\\r\\n``, ``\\r`` or ``\\n`` line ends, ``:`` comment lines, multi-line ``data`` joined with
``\\n``, ``event``/``id``/``retry`` fields, dispatch on a blank line, and an event cut off at the
end of the stream is discarded.
"""

from __future__ import annotations

import codecs
import re
from typing import NamedTuple

# Only these three are SSE line ends; str.splitlines() would also split on \x0b, \u2028 ...
_LINE_END = re.compile(r"\r\n|\r|\n")

DEFAULT_MAX_LINE_CHARS = 8 * 1024 * 1024


class SseError(ValueError):
    """The byte stream cannot be a sane event stream (e.g. an endless line)."""


class SseEvent(NamedTuple):
    """One dispatched event (a tuple: made for every token, so as cheap as can be)."""

    data: str
    event: str = "message"
    id: str = ""
    retry: int | None = None


class SseDecoder:
    """Feed bytes as they arrive; get back the events completed by them."""

    def __init__(self, *, max_line_chars: int = DEFAULT_MAX_LINE_CHARS) -> None:
        # utf-8-sig drops one leading BOM, as the spec's "UTF-8 decode" does, even if split.
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self._max_line_chars = max_line_chars
        self._buffer = ""
        # A chunk ending in \r may be the first half of \r\n: skip a \n opening the next one.
        self._skip_lf = False
        self._data: list[str] = []
        self._event_type = ""
        self._last_id = ""
        self._retry: int | None = None
        self._closed = False

    def feed(self, chunk: bytes) -> list[SseEvent]:
        if self._closed:
            raise SseError("feed() after close()")
        text = self._decoder.decode(chunk)
        if not text:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
                if not text:
                    return []
        buffer = self._buffer + text if self._buffer else text
        events: list[SseEvent] = []
        line = self._line
        if "\r" not in buffer:
            # The usual case (every provider here ends lines with \n): a plain split.
            lines = buffer.split("\n")
            self._buffer = lines.pop()
            for one in lines:
                line(one, events)
        else:
            start = 0
            for match in _LINE_END.finditer(buffer):
                line(buffer[start : match.start()], events)
                start = match.end()
            self._buffer = buffer[start:]
            if start and buffer[start - 1] == "\r" and start == len(buffer):
                self._skip_lf = True
        if len(self._buffer) > self._max_line_chars:
            raise SseError(f"SSE line longer than {self._max_line_chars} characters")
        return events

    def close(self) -> None:
        """End of stream: an event without its closing blank line is discarded, per the spec."""
        self._decoder.decode(b"", final=True)
        self._closed = True
        self._buffer = ""
        self._data = []
        self._event_type = ""

    def _line(self, line: str, events: list[SseEvent]) -> None:
        if not line:
            self._dispatch(events)
            return
        if line.startswith("data:"):  # nearly every line: no partition needed
            self._data.append(line[6:] if line[5:6] == " " else line[5:])
            return
        if line[0] == ":":
            return  # comment, e.g. OpenRouter's ": OPENROUTER PROCESSING" keep-alive
        name, sep, value = line.partition(":")
        if sep and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event_type = value
        elif name == "id":
            if "\0" not in value:
                self._last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)
        # Any other field name is ignored, as the spec says.

    def _dispatch(self, events: list[SseEvent]) -> None:
        if not self._data:
            self._event_type = ""
            return
        data = self._data
        events.append(
            SseEvent(
                data=data[0] if len(data) == 1 else "\n".join(data),
                event=self._event_type or "message",
                id=self._last_id,
                retry=self._retry,
            )
        )
        self._data = []
        self._event_type = ""
