"""MQTT v5 packets for a QoS 1 subscriber: encoders for what the bridge sends, a streaming decoder for what it reads.

Pure and synchronous: bytes in, packets out, no sockets and no clock. Only what a subscriber that acknowledges
after commit needs is here (OASIS MQTT 5.0, section 3): CONNECT / CONNACK, SUBSCRIBE / SUBACK, UNSUBSCRIBE /
UNSUBACK, PUBLISH both ways at QoS 0/1, PUBACK both ways, PINGREQ / PINGRESP, DISCONNECT. QoS 2 never reaches us
(subscriptions ask for QoS 1, so the broker downgrades), and Topic Alias Maximum stays 0 in CONNECT, so the
broker never sends aliases. AUTH is refused as a protocol error.

`Decoder.feed` takes whatever the socket returned and yields every complete packet in it; a partial packet waits
for the next call. PUBLISH is the hot path (tens of thousands a second), so it is decoded inline into a plain
tuple `(topic, payload, packet_id, qos, dup, properties)` and its properties are kept as raw bytes: the bridge
reads them (user properties: trace context) only for the few messages it samples.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK = 8, 9, 10, 11
PINGREQ, PINGRESP, DISCONNECT, AUTH = 12, 13, 14, 15

# Property identifiers (MQTT 5.0, 2.2.2.2) the bridge writes or reads, and the wire type of every identifier, so
# a property block can be walked even when it holds ones the bridge does not care about.
SESSION_EXPIRY, RECEIVE_MAXIMUM, MAXIMUM_PACKET_SIZE = 0x11, 0x21, 0x27
SERVER_KEEP_ALIVE, ASSIGNED_CLIENT_ID, REASON_STRING, USER_PROPERTY = 0x13, 0x12, 0x1F, 0x26
_BYTE, _U16, _U32, _VARINT, _STR, _BIN, _PAIR = range(7)
PROPERTY_TYPES = {
    0x01: _BYTE, 0x02: _U32, 0x03: _STR, 0x08: _STR, 0x09: _BIN, 0x0B: _VARINT, 0x11: _U32, 0x12: _STR,
    0x13: _U16, 0x15: _STR, 0x16: _BIN, 0x17: _BYTE, 0x18: _U32, 0x19: _BYTE, 0x1A: _STR, 0x1C: _STR,
    0x1F: _STR, 0x21: _U16, 0x22: _U16, 0x23: _U16, 0x24: _BYTE, 0x25: _BYTE, 0x26: _PAIR, 0x27: _U32,
    0x28: _BYTE, 0x29: _BYTE, 0x2A: _BYTE,
}  # fmt: skip
MAX_REMAINING = 268_435_455  # the largest Remaining Length a 4-byte varint holds

Publish = tuple[str, bytes, int, int, bool, bytes]  # topic, payload, packet id (0 at QoS 0), qos, dup, raw properties


class ProtocolError(ValueError):
    """The peer sent bytes that are not MQTT v5: the connection must be closed."""


@dataclass(frozen=True, slots=True)
class Packet:
    """Any packet but PUBLISH: its type, the packet id where it has one, reason codes and decoded properties."""

    type: int
    packet_id: int = 0
    reasons: tuple[int, ...] = ()
    properties: dict[int, object] = field(default_factory=dict)
    session_present: bool = False


# --- encoding ----------------------------------------------------------------------------------------------------
def varint(n: int) -> bytes:
    if not 0 <= n <= MAX_REMAINING:
        raise ValueError(f"{n} does not fit a variable byte integer")
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str) -> bytes:
    b = s.encode()
    if len(b) > 0xFFFF:
        raise ValueError("string longer than 65,535 bytes")
    return struct.pack("!H", len(b)) + b


PropertyValue = int | str | bytes | tuple[str, str]


def _props(props: Iterable[tuple[int, PropertyValue]]) -> bytes:
    body = bytearray()
    for ident, value in props:
        kind = PROPERTY_TYPES[ident]
        body.append(ident)
        if isinstance(value, tuple):
            body += _str(value[0]) + _str(value[1])
        elif isinstance(value, str):
            body += _str(value)
        elif isinstance(value, bytes):
            body += struct.pack("!H", len(value)) + value
        elif kind == _BYTE:
            body.append(value)
        elif kind == _U16:
            body += struct.pack("!H", value)
        elif kind == _U32:
            body += struct.pack("!I", value)
        else:
            body += varint(value)
    return varint(len(body)) + bytes(body)


def _packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + varint(len(body)) + body


def connect(
    client_id: str,
    *,
    keepalive: int,
    clean_start: bool,
    session_expiry: int,
    receive_maximum: int,
    username: str | None = None,
    password: str | None = None,
) -> bytes:
    flags = (0x02 if clean_start else 0) | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    header = _str("MQTT") + bytes((5, flags)) + struct.pack("!H", keepalive)
    props = _props(((SESSION_EXPIRY, session_expiry), (RECEIVE_MAXIMUM, receive_maximum)))
    payload = _str(client_id)  # no will
    if username is not None:
        payload += _str(username)
    if password is not None:
        payload += _str(password)
    return _packet(CONNECT << 4, header + props + payload)


def subscribe(packet_id: int, filters: Iterable[str], qos: int = 1) -> bytes:
    body = struct.pack("!H", packet_id) + _props(())
    for f in filters:
        body += _str(f) + bytes((qos,))  # no-local 0, retain-as-published 0, retain handling 0
    return _packet(SUBSCRIBE << 4 | 0x2, body)


def unsubscribe(packet_id: int, filters: Iterable[str]) -> bytes:
    body = struct.pack("!H", packet_id) + _props(()) + b"".join(_str(f) for f in filters)
    return _packet(UNSUBSCRIBE << 4 | 0x2, body)


def publish(
    topic: str,
    payload: bytes,
    *,
    qos: int,
    packet_id: int = 0,
    dup: bool = False,
    user_properties: Iterable[tuple[str, str]] = (),
) -> bytes:
    first = PUBLISH << 4 | (0x08 if dup else 0) | qos << 1
    props = _props([(USER_PROPERTY, pair) for pair in user_properties])
    body = _str(topic) + (struct.pack("!H", packet_id) if qos else b"") + props + payload
    return _packet(first, body)


_PUBACK = struct.Struct("!BBH")


def pubacks(packet_ids: Iterable[int]) -> bytes:
    """PUBACK Success for each id, concatenated for one write (Remaining Length 2: reason 0 may be omitted)."""
    pack = _PUBACK.pack
    return b"".join([pack(PUBACK << 4, 2, pid) for pid in packet_ids])


PINGREQ_BYTES = bytes((PINGREQ << 4, 0))


def disconnect(reason: int = 0, session_expiry: int | None = None) -> bytes:
    props = _props([(SESSION_EXPIRY, session_expiry)] if session_expiry is not None else [])
    return _packet(DISCONNECT << 4, bytes((reason,)) + props)


# --- decoding ----------------------------------------------------------------------------------------------------
def _read_varint(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int] | None:
    """(value, next position), None when the buffer ends first; raises on a fifth byte."""
    value, shift = 0, 0
    for i in range(4):
        if pos + i >= len(buf):
            return None
        b = buf[pos + i]
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos + i + 1
        shift += 7
    raise ProtocolError("variable byte integer longer than 4 bytes")


def decode_properties(raw: bytes) -> dict[int, object]:
    """A property block (without its length prefix); user properties collect into a list of pairs."""
    props: dict[int, object] = {}
    pos = 0
    try:
        while pos < len(raw):
            ident = raw[pos]
            pos += 1
            kind = PROPERTY_TYPES.get(ident)
            value: object
            if kind is None:
                raise ProtocolError(f"unknown property 0x{ident:02x}")
            if kind == _BYTE:
                value, pos = raw[pos], pos + 1
            elif kind == _U16:
                (value,), pos = struct.unpack_from("!H", raw, pos), pos + 2
            elif kind == _U32:
                (value,), pos = struct.unpack_from("!I", raw, pos), pos + 4
            elif kind == _VARINT:
                got = _read_varint(raw, pos)
                if got is None:
                    raise ProtocolError("truncated property")
                value, pos = got
            else:
                strings = []
                for _ in range(2 if kind == _PAIR else 1):
                    (n,) = struct.unpack_from("!H", raw, pos)
                    chunk = raw[pos + 2 : pos + 2 + n]
                    if len(chunk) != n:
                        raise ProtocolError("truncated property")
                    strings.append(chunk if kind == _BIN else chunk.decode())
                    pos += 2 + n
                value = tuple(strings) if kind == _PAIR else strings[0]
            if kind == _PAIR:
                pairs = props.setdefault(ident, [])
                assert isinstance(pairs, list)
                pairs.append(value)
            else:
                props[ident] = value
    except (struct.error, IndexError, UnicodeDecodeError) as err:
        raise ProtocolError(f"malformed properties: {err}") from None
    return props


def _body_properties(body: bytes, pos: int) -> tuple[dict[int, object], int]:
    got = _read_varint(body, pos)
    if got is None:
        return {}, pos  # properties may be absent when a short form is used
    n, start = got
    if start + n > len(body):
        raise ProtocolError("property length beyond the packet")
    return decode_properties(body[start : start + n]), start + n


def _control(kind: int, flags: int, body: bytes) -> Packet:
    """Decode a non-PUBLISH packet a server may send to a client."""
    try:
        if kind == CONNACK:
            if len(body) < 2:
                raise ProtocolError("short CONNACK")
            props, _ = _body_properties(body, 2)
            return Packet(CONNACK, reasons=(body[1],), properties=props, session_present=bool(body[0] & 1))
        if kind in (PUBACK, SUBACK, UNSUBACK):
            if len(body) < 2:
                raise ProtocolError(f"short packet type {kind}")
            (pid,) = struct.unpack_from("!H", body)
            if kind == PUBACK:
                return Packet(PUBACK, pid, (body[2] if len(body) > 2 else 0,))
            props, pos = _body_properties(body, 2)
            return Packet(kind, pid, tuple(body[pos:]), props)
        if kind == PINGRESP:
            return Packet(PINGRESP)
        if kind == DISCONNECT:
            props, _ = _body_properties(body, 1) if len(body) > 1 else ({}, 1)
            return Packet(DISCONNECT, reasons=(body[0] if body else 0,), properties=props)
    except struct.error as err:
        raise ProtocolError(f"malformed packet type {kind}: {err}") from None
    raise ProtocolError(f"a server does not send packet type {kind} (flags {flags:#x}) to this client")


class Decoder:
    """Splits a byte stream into packets; keeps an incomplete tail for the next `feed`."""

    def __init__(self, max_packet: int = MAX_REMAINING) -> None:
        self._buf = bytearray()
        self.max_packet = max_packet

    def feed(self, data: bytes) -> list[Publish | Packet]:
        """Every complete packet in the stream so far, in order; raises ProtocolError on bytes that are not MQTT."""
        buf = self._buf
        buf += data
        out: list[Publish | Packet] = []
        pos, end = 0, len(buf)
        unpack_h = struct.unpack_from
        try:
            while pos + 2 <= end:
                first = buf[pos]
                # Remaining Length: one byte for packets under 128 bytes, the common case.
                b = buf[pos + 1]
                if b < 0x80:
                    length, start = b, pos + 2
                else:
                    got = _read_varint(buf, pos + 1)
                    if got is None:
                        break
                    length, start = got
                if length > self.max_packet:
                    raise ProtocolError(f"packet of {length} bytes exceeds the limit of {self.max_packet}")
                stop = start + length
                if stop > end:
                    break
                kind = first >> 4
                if kind == PUBLISH:
                    qos = (first >> 1) & 3
                    if qos == 3:
                        raise ProtocolError("PUBLISH with QoS 3")
                    (tlen,) = unpack_h("!H", buf, start)
                    p = start + 2 + tlen
                    if p + (3 if qos else 1) > stop:
                        raise ProtocolError("PUBLISH shorter than its topic, packet id and properties")
                    topic = buf[start + 2 : p].decode()
                    pid = 0
                    if qos:
                        (pid,) = unpack_h("!H", buf, p)
                        p += 2
                    plen = buf[p]
                    if plen < 0x80:
                        p += 1
                    else:
                        got = _read_varint(buf, p)
                        if got is None:
                            raise ProtocolError("truncated PUBLISH properties")
                        plen, p = got
                    if p + plen > stop:
                        raise ProtocolError("PUBLISH properties beyond the packet")
                    props = bytes(buf[p : p + plen]) if plen else b""
                    out.append((topic, bytes(buf[p + plen : stop]), pid, qos, bool(first & 0x08), props))
                else:
                    out.append(_control(kind, first & 0x0F, bytes(buf[start:stop])))
                pos = stop
        except (struct.error, IndexError, UnicodeDecodeError) as err:
            raise ProtocolError(f"malformed packet: {err}") from None
        del buf[:pos]
        return out
