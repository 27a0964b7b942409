"""The stream benchmark's arithmetic: matching posts with arrivals, percentiles, chunked bodies."""

import math

import pytest

from bench.procstat import CpuUsage
from bench.stream_client import ChunkedDecoder, chat_ids
from bench.streams import delivery, percentile

CPU = CpuUsage(50.0, 20.0, 5.0, 0.0, 0.0, clients_pct=10.0)


def test_each_post_is_matched_with_its_arrival_on_every_stream_of_its_chat() -> None:
    posted = [[1, 1, 10.000], [2, 1, 10.010], [1, 2, 10.020]]
    streams = [
        {"chat": 1, "arrivals": [[1, 10.004], [2, 10.030]]},
        {"chat": 1, "arrivals": [[1, 9.999], [2, 10.021]]},  # seq 1 before its 201
        {"chat": 2, "arrivals": [[7, 11.0]]},  # not a post of the window; seq 1 never came
    ]

    found = delivery(posted, streams, wall_s=0.05, late_s=[0.0, 0.001, 0.002], cpu=CPU)

    assert (found.posts, found.expected, found.received, found.early) == (3, 5, 4, 1)
    assert found.rate == pytest.approx(60.0)
    # 0 (early), 1, 4 and 10 ms, then the one that never came.
    assert found.p50_ms == pytest.approx(4.0)
    assert math.isinf(found.p99_ms)
    assert math.isinf(found.max_ms)
    assert found.late_p99_ms == pytest.approx(2.0)
    assert found.cpu == CPU


def test_every_delivery_arrived_gives_finite_percentiles() -> None:
    posted = [[3, seq, 100.0 + seq] for seq in range(1, 101)]
    streams = [{"chat": 3, "arrivals": [[seq, 100.0 + seq + seq / 1000] for seq in range(1, 101)]}]

    found = delivery(posted, streams, wall_s=100.0, late_s=[], cpu=CPU)

    assert (found.expected, found.received, found.early) == (100, 100, 0)
    assert found.p50_ms == pytest.approx(50.0)
    assert found.p90_ms == pytest.approx(90.0)
    assert found.p99_ms == pytest.approx(99.0)
    assert found.max_ms == pytest.approx(100.0)
    assert math.isnan(found.late_p99_ms)


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]

    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 99.9) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_streams_are_spread_over_the_chats_in_turn() -> None:
    assert chat_ids(5, 3, 7) == [5, 6, 7, 5, 6, 7, 5]


def encode_chunked(pieces: list[bytes]) -> bytes:
    body = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
    return body + b"0\r\n\r\n"


@pytest.mark.parametrize("step", [1, 2, 3, 7, 1000])
def test_a_chunked_body_is_decoded_however_it_is_split(step: int) -> None:
    pieces = [b"retry: 2000\r\n\r\n", b"id: 1\r\nevent: message.posted\r\ndata: {}\r\n\r\n", b"x"]
    raw = encode_chunked(pieces)
    decoder = ChunkedDecoder()

    decoded = b"".join(decoder.feed(raw[at : at + step]) for at in range(0, len(raw), step))

    assert decoded == b"".join(pieces)
    assert decoder.finished
