"""What the transport needs to read a request safely: strict header numbers, Content-Encoding
undone as the body arrives, and bounded excerpts of client values for error messages.

Nothing here recurses on client data or formats it whole: a value nested a thousand levels deep
or a header of a million digits costs a bounded amount of work and gives a 4xx, not a 500.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

from mlmodel_runtime.server.errors import InvalidInput, PayloadTooLarge, UnsupportedEncoding

MAX_LENGTH_DIGITS = 20
"""Digits a length header may have (2**64 has 20): more is refused, not handed to int()."""

EXCERPT_CHARS = 80
"""Longest excerpt of a client value in an error message."""

_GZIP_WBITS = 16 + zlib.MAX_WBITS
_WBITS = {"gzip": _GZIP_WBITS, "x-gzip": _GZIP_WBITS, "deflate": zlib.MAX_WBITS}


def parse_length(raw: bytes | None, header: str) -> int | None:
    """A length header: decimal digits only (no sign, space or `_`), at most MAX_LENGTH_DIGITS."""
    if raw is None:
        return None
    if not (0 < len(raw) <= MAX_LENGTH_DIGITS and raw.isdigit()):  # bytes.isdigit(): ASCII 0-9 only
        raise InvalidInput(
            f"{header} must be a decimal integer of at most {MAX_LENGTH_DIGITS} digits, "
            f"got {excerpt(raw.decode('latin-1'))}"
        )
    return int(raw)


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> str:
    """`value` as compact JSON text, cut after `limit` characters (with `...`); iterative, never recursive."""
    parts: list[str] = []
    size = 0
    for token in _tokens(value, limit):
        parts.append(token)
        size += len(token)
        if size > limit:
            return "".join(parts)[:limit] + "..."
    return "".join(parts)


def quote(text: str, limit: int = EXCERPT_CHARS) -> str:
    """A name from the client in single quotes, cut after `limit` characters."""
    return f"'{text[:limit]}...'" if len(text) > limit else f"'{text}'"


class _Raw(str):
    """Punctuation already rendered (tells it apart from a string value to quote)."""


def _tokens(value: Any, limit: int) -> Iterator[str]:
    stack: list[Iterator[Any]] = [iter((value,))]
    while stack:
        part = next(stack[-1], _END)
        if part is _END:
            stack.pop()
        elif isinstance(part, _Raw):
            yield part
        elif isinstance(part, list | tuple):
            stack.append(_items(part))
        elif isinstance(part, dict):
            stack.append(_members(part, limit))
        else:
            yield _scalar(part, limit)


_END = object()


def _items(values: list[Any] | tuple[Any, ...]) -> Iterator[Any]:
    yield _Raw("[")
    for i, value in enumerate(values):
        if i:
            yield _Raw(", ")
        yield value
    yield _Raw("]")


def _members(values: dict[Any, Any], limit: int) -> Iterator[Any]:
    yield _Raw("{")
    for i, (key, value) in enumerate(values.items()):
        yield _Raw(("" if not i else ", ") + _scalar(key, limit) + ": ")
        yield value
    yield _Raw("}")


def _scalar(value: Any, limit: int) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if value.bit_length() > 64:  # str() of a huge int is slow, and refused past 4300 digits
            return f"<integer of {value.bit_length()} bits>"
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        cut = value[: limit + 1]
        return '"' + cut.replace("\\", "\\\\").replace('"', '\\"') + ('"' if len(cut) <= limit else "")
    return f"<{type(value).__name__}>"


class BodyDecoder:
    """Collects a request body as it arrives, undoing gzip or deflate on the way.

    The decoded body may not exceed `limit` bytes (413, whatever the compression ratio). Every
    member of a multi-member gzip body is decoded (RFC 1952); anything after the last member or
    after a deflate stream is refused, as is a truncated stream.
    """

    def __init__(self, encoding: bytes | None, limit: int, expected: int | None = None) -> None:
        name = "" if encoding is None else encoding.decode("latin-1").strip().lower()
        self._limit = limit
        self._encoding = name
        if name in ("", "identity"):
            self._wbits = 0
            # the declared length, known to be within the limit: one buffer (made when the first bytes
            # come, not while the request waits for admission), no joining of chunks
            self._out = bytearray()
            self._expected = expected or 0
            self._filled = 0 if expected else -1
            return
        wbits = _WBITS.get(name)
        if wbits is None:
            raise UnsupportedEncoding(f"Content-Encoding {excerpt(name)} is not supported (use gzip, deflate or none)")
        self._wbits = wbits
        self._out = bytearray()
        self._expected = 0
        self._filled = -1
        self._inflate = zlib.decompressobj(wbits)
        self._members = 1

    def whole(self, chunk: bytes) -> bool:
        """Whether `chunk` alone is the complete body, to take as it is (identity, of the declared length)."""
        return not self._wbits and self._filled == 0 and len(chunk) == self._expected

    @property
    def size(self) -> int:
        """Decoded bytes so far."""
        return self._filled if self._filled >= 0 else len(self._out)

    def feed(self, chunk: bytes) -> None:
        if not self._wbits:
            if self._filled >= 0:
                if not self._out:
                    self._out = bytearray(self._expected)
                end = self._filled + len(chunk)
                if end > self._expected:
                    raise InvalidInput("request body is longer than its Content-Length")
                self._out[self._filled : end] = chunk
                self._filled = end
                return
            if len(self._out) + len(chunk) > self._limit:
                raise PayloadTooLarge(f"request body is over the limit of {self._limit} bytes")
            self._out += chunk
            return
        data = chunk
        while data:
            inflate = self._inflate
            room = self._limit - len(self._out)
            try:
                self._out += inflate.decompress(data, room + 1)
            except zlib.error as exc:
                raise InvalidInput(self._invalid(str(exc))) from None
            if len(self._out) > self._limit or inflate.unconsumed_tail:
                raise PayloadTooLarge(f"decompressed request body is over the limit of {self._limit} bytes")
            data = inflate.unused_data if inflate.eof else b""
            if data:
                if self._wbits != _GZIP_WBITS:
                    raise InvalidInput(f"{len(data)}+ bytes follow the end of the {self._encoding} data")
                self._inflate = zlib.decompressobj(self._wbits)  # the next gzip member
                self._members += 1

    def finish(self) -> bytearray:
        """The whole decoded body (refuses a truncated stream)."""
        if self._wbits and not self._inflate.eof:
            what = "body" if self._members == 1 else f"gzip member {self._members}"
            raise InvalidInput(self._invalid(f"{what} is truncated"))
        if self._filled >= 0 and self._filled != self._expected:
            raise InvalidInput(f"request body has {self._filled} bytes, its Content-Length says {self._expected}")
        return self._out

    def _invalid(self, why: str) -> str:
        where = "" if self._members == 1 else f" (gzip member {self._members}, after {len(self._out)} decoded bytes)"
        return f"body is not valid {self._encoding} data{where}: {why}"
