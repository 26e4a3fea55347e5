"""What crosses the wire per token: the worker's lines, the coordinator's chunks, their
timers and counters. The hot path splices JSON literals instead of encoding each token
again; every output here must be exactly what `json` itself would have written."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from ishan_tools.infer.coordinator.app import coordinator_render
from ishan_tools.infer.coordinator.openai_api import _renderer
from ishan_tools.infer.coordinator.worker_stream import WorkerStream
from ishan_tools.infer.events import Done, Failed, Token
from ishan_tools.infer.metrics import FLUSH_EVERY, Metrics, RequestRecord
from ishan_tools.infer.protocol import decode_event, encode_event
from ishan_tools.infer.worker.session import Channel

TEXTS = ["Paris", " the", "", '"}', "a\\", 'quote " and \\ slash', "é ü 中文", "😀", "\n\t\x00\x1f"]


@pytest.mark.parametrize("text", TEXTS)
def test_a_token_line_is_plain_json_and_reads_back_the_same(text: str) -> None:
    line = encode_event(Token(text))
    assert line == (json.dumps({"token": text}) + "\n").encode()
    event = decode_event(line.decode().rstrip("\n"))
    assert event == Token(text) and isinstance(event, Token) and event.json is not None
    assert encode_event(event) == line  # the literal is reused as it came


def test_lines_off_the_hot_path_still_read_right() -> None:
    assert decode_event('{"token": "a", "extra": "b"}') == Token("a")
    assert decode_event('{"token":"spaced"}') == Token("spaced")
    done = Done("stop", 3, 4)
    assert decode_event(encode_event(done).decode()) == done
    failed = decode_event('{"token": "a\\"}')
    assert isinstance(failed, Failed) and failed.status == 502 and "malformed" in failed.message


@pytest.mark.parametrize("text", TEXTS)
def test_client_chunks_carry_the_token_exactly(text: str) -> None:
    spliced, built = decode_event(json.dumps({"token": text})), Token(text)
    for token in (spliced, built):
        assert isinstance(token, Token)
        [chunk] = coordinator_render(token)
        assert json.loads(chunk.removeprefix(b"data: ")) == {"token": text, "finished": False}
        completion = _renderer("cmpl-1", "m", chat=False)
        body = json.loads(completion(token)[0].removeprefix(b"data: "))
        assert body["choices"] == [
            {"index": 0, "text": text, "logprobs": None, "finish_reason": None}
        ]
        assert (body["id"], body["object"], body["model"]) == ("cmpl-1", "text_completion", "m")


def test_a_chat_stream_names_the_role_once_then_only_content() -> None:
    render = _renderer("chatcmpl-1", "m", chat=True)
    chunks = [json.loads(render(t)[0].removeprefix(b"data: ")) for t in map(Token, TEXTS)]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0] == {"content": TEXTS[0], "role": "assistant"}
    assert deltas[1:] == [{"content": text} for text in TEXTS[1:]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    last, end = render(Done("stop", 1, len(TEXTS)))
    assert json.loads(last.removeprefix(b"data: "))["choices"][0]["finish_reason"] == "stop"
    assert end == b"data: [DONE]\n\n"


def test_a_reader_that_fell_behind_takes_the_pile_at_once() -> None:
    async def main() -> list[list[str]]:
        channel = Channel(capacity=8)
        for text in ("a", "b", "c"):
            assert channel.offer(Token(text))
        first = await channel.aget_all()
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, channel.offer, Token("d"))
        second = await channel.aget_all()  # waits for the engine's next event
        channel.offer(Token("e"))
        channel.close_with(Done("stop", 1, 5))
        third = await channel.aget_all()
        return [[getattr(e, "text", "<done>") for e in batch] for batch in (first, second, third)]

    assert asyncio.run(main()) == [["a", "b", "c"], ["d"], ["e", "<done>"]]


async def _worker_that(lines: list[tuple[float, bytes]]) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\ncontent-type: application/x-ndjson\r\n\r\n")
        for delay, line in lines:
            await asyncio.sleep(delay)
            writer.write(line)
        await asyncio.sleep(5)  # then silence, connection open
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def test_a_silent_worker_stream_expires_and_a_slow_steady_one_does_not() -> None:
    async def read(lines: list[tuple[float, bytes]], idle_s: float) -> tuple[int, float]:
        server = await _worker_that(lines)
        port = server.sockets[0].getsockname()[1]
        stream = await WorkerStream.post(f"http://127.0.0.1:{port}/", {}, {}, 5.0)
        stream.expire_after(idle_s)
        count, started = 0, time.monotonic()
        try:
            while await stream.readline() is not None:
                count += 1
        except TimeoutError:
            return count, time.monotonic() - started
        finally:
            await stream.aclose()
            server.close()
        raise AssertionError("the stream ended instead of expiring")

    steady = [(0.1, b'{"token": "x"}\n')] * 8  # 0.8 s in all, never 0.3 s apart
    count, waited = asyncio.run(read(steady, 0.3))
    assert count == 8 and 0.8 + 0.3 <= waited < 0.8 + 1.5
    count, waited = asyncio.run(read([], 0.3))
    assert count == 0 and 0.3 <= waited < 1.5


def test_the_token_count_is_live_and_the_gaps_complete_by_the_last_event() -> None:
    metrics = Metrics(lambda: [])
    record = RequestRecord(metrics)

    def sample(name: str) -> float | None:
        return metrics.registry.get_sample_value(name)

    total = FLUSH_EVERY + 5
    for _ in range(total):
        record.observe(Token("x"))
    assert sample("ishan_infer_tokens_generated_total") == total  # live: rates read it
    assert sample("ishan_infer_inter_token_seconds_count") == FLUSH_EVERY  # one batch so far
    record.observe(Done("length", 1, total))
    assert sample("ishan_infer_tokens_generated_total") == total
    assert sample("ishan_infer_inter_token_seconds_count") == total - 1
    assert sample("ishan_infer_time_to_first_token_seconds_count") == 1
