"""The bridge's MQTT v5 codec: packets survive any split of the byte stream, and garbage never escapes as a crash.

Encoders are checked against the byte layouts of the MQTT 5.0 specification (section numbers in the tests);
the decoder is fed hypothesis-generated streams cut at arbitrary points, and arbitrary bytes.
"""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dtwin_bridge.mqttwire import codec

topics = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00+#"), min_size=1, max_size=80)
publishes = st.tuples(
    topics,
    st.binary(max_size=400),
    st.integers(0, 1),
    st.integers(1, 65535),
    st.booleans(),
)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@settings(max_examples=300, deadline=None)
@given(st.lists(publishes, min_size=1, max_size=30), st.lists(st.integers(0, 10**6), max_size=12))
def test_publishes_round_trip_across_any_split(msgs: list[tuple[str, bytes, int, int, bool]], cuts: list[int]) -> None:
    stream = b"".join(codec.publish(t, p, qos=q, packet_id=pid if q else 0, dup=d) for t, p, q, pid, d in msgs)
    dec = codec.Decoder()
    got = [pkt for chunk in split(stream, cuts) for pkt in dec.feed(chunk)]
    assert got == [(t, p, pid if q else 0, q, d, b"") for t, p, q, pid, d in msgs]


def test_large_publish_uses_a_multi_byte_remaining_length() -> None:
    body = bytes(range(256)) * 800  # 204,800 bytes: a three-byte Remaining Length
    packet = codec.publish("a/b", body, qos=1, packet_id=7)
    assert packet[1] & 0x80 and packet[2] & 0x80 and not packet[3] & 0x80
    dec = codec.Decoder()
    assert dec.feed(packet[:100]) == []
    assert dec.feed(packet[100:]) == [("a/b", body, 7, 1, False, b"")]


@pytest.mark.parametrize(
    ("n", "encoded"),
    [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16_383, b"\xff\x7f"), (16_384, b"\x80\x80\x01"),
     (2_097_151, b"\xff\xff\x7f"), (2_097_152, b"\x80\x80\x80\x01"), (268_435_455, b"\xff\xff\xff\x7f")],
)  # fmt: skip
def test_variable_byte_integer_boundaries(n: int, encoded: bytes) -> None:
    """MQTT 5.0, 1.5.5: the table of one- to four-byte ranges."""
    assert codec.varint(n) == encoded
    with pytest.raises(ValueError, match="does not fit"):
        codec.varint(268_435_456)


def test_pubacks_are_four_bytes_each_in_order() -> None:
    """MQTT 5.0, 3.4.2.1: reason Success and no properties may be omitted (Remaining Length 2)."""
    data = codec.pubacks([1, 300, 65535])
    assert data == b"\x40\x02\x00\x01" + b"\x40\x02\x01\x2c" + b"\x40\x02\xff\xff"
    assert [(p.type, p.packet_id, p.reasons) for p in codec.Decoder().feed(data)] == [
        (codec.PUBACK, 1, (0,)),
        (codec.PUBACK, 300, (0,)),
        (codec.PUBACK, 65535, (0,)),
    ]  # type: ignore[union-attr]


def test_connect_layout() -> None:
    """MQTT 5.0, 3.1: protocol name, level 5, flags, keepalive, properties, then the client id."""
    pkt = codec.connect("br-1", keepalive=30, clean_start=False, session_expiry=3600, receive_maximum=65535)
    assert pkt[0] == 0x10
    body = pkt[2:]
    assert pkt[1] == len(body)
    assert body[:6] == b"\x00\x04MQTT" and body[6] == 5 and body[7] == 0  # Clean Start 0, no will, no credentials
    assert struct.unpack("!H", body[8:10]) == (30,)
    props_len = body[10]
    props = codec.decode_properties(body[11 : 11 + props_len])
    assert props == {codec.SESSION_EXPIRY: 3600, codec.RECEIVE_MAXIMUM: 65535}
    assert body[11 + props_len :] == b"\x00\x04br-1"
    with_auth = codec.connect("x", keepalive=5, clean_start=True, session_expiry=0, receive_maximum=10,
                              username="u", password="p")  # fmt: skip
    assert with_auth[2 + 7] == 0x80 | 0x40 | 0x02
    assert with_auth.endswith(b"\x00\x01x\x00\x01u\x00\x01p")


def test_subscribe_and_unsubscribe_layout() -> None:
    """MQTT 5.0, 3.8 and 3.10: fixed-header flags 0b0010, packet id, empty properties, filters (+ options)."""
    sub = codec.subscribe(9, ["$share/g/sites/a/#", "x"])
    assert sub[0] == 0x82 and sub[2:5] == b"\x00\x09\x00"
    assert sub[5:] == b"\x00\x12$share/g/sites/a/#\x01" + b"\x00\x01x\x01"
    unsub = codec.unsubscribe(10, ["x"])
    assert unsub == b"\xa2\x06\x00\x0a\x00\x00\x01x"


def test_server_packets_decode() -> None:
    # CONNACK: session present, Success, Server Keep Alive 20 and Receive Maximum 100.
    props = b"\x13\x00\x14\x21\x00\x64"
    connack = bytes((0x20, 3 + len(props), 1, 0, len(props))) + props
    # SUBACK id 5: granted QoS 1 and "not authorized" (0x87).
    suback = b"\x90\x05\x00\x05\x00\x01\x87"
    # DISCONNECT: Session taken over (0x8e) with a reason string.
    reason = b"\x1f\x00\x05taken"
    disconnect = bytes((0xE0, 2 + len(reason), 0x8E, len(reason))) + reason
    got = codec.Decoder().feed(connack + suback + b"\xd0\x00" + disconnect)
    assert got == [
        codec.Packet(codec.CONNACK, reasons=(0,), properties={0x13: 20, 0x21: 100}, session_present=True),
        codec.Packet(codec.SUBACK, 5, (1, 0x87)),
        codec.Packet(codec.PINGRESP),
        codec.Packet(codec.DISCONNECT, reasons=(0x8E,), properties={codec.REASON_STRING: "taken"}),
    ]


def test_user_properties_are_kept_raw_and_decodable() -> None:
    """Trace context travels as user properties; the hot path keeps them as bytes for later."""
    raw = b"\x26\x00\x0btraceparent\x00\x0300-" + b"\x26\x00\x01k\x00\x01v"
    body = b"\x00\x03a/b" + b"\x00\x2a" + bytes((len(raw),)) + raw + b"payload"
    (pub,) = codec.Decoder().feed(bytes((0x32, len(body))) + body)
    assert pub == ("a/b", b"payload", 42, 1, False, raw)
    assert codec.decode_properties(raw) == {codec.USER_PROPERTY: [("traceparent", "00-"), ("k", "v")]}


@pytest.mark.parametrize(
    "stream",
    [
        b"\x30\x80\x80\x80\x80\x01",  # five-byte Remaining Length
        b"\x36\x03\x00\x00\x00",  # PUBLISH with QoS 3
        b"\x32\x03\x00\x01a",  # QoS 1 PUBLISH cut before its packet id
        b"\x30\x05\x00\x09abc",  # topic longer than the packet
        b"\x30\x04\x00\x01a\x05",  # properties longer than the packet
        b"\x10\x00",  # CONNECT: a server never sends it
        b"\xf0\x00",  # AUTH: not supported
        b"\x40\x01\x00",  # PUBACK shorter than a packet id
        b"\x30\x05\x00\x02\xff\xfe\x00",  # topic not UTF-8
    ],
)
def test_malformed_streams_raise_protocol_error(stream: bytes) -> None:
    with pytest.raises(codec.ProtocolError):
        codec.Decoder().feed(stream)


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise_anything_but_protocol_error(data: bytes) -> None:
    with contextlib.suppress(codec.ProtocolError):
        codec.Decoder().feed(data)


def test_packet_size_limit() -> None:
    with pytest.raises(codec.ProtocolError, match="exceeds the limit"):
        codec.Decoder(max_packet=100).feed(codec.publish("t", b"x" * 200, qos=0))
