"""An OpenAI-compatible chat-completions server that answers at once, for throughput benchmarks.

Run in its own process (`python -m handoffs_bench.loopback`), it prints its base URL on stdout and
serves until its stdin closes. Each `POST .../chat/completions` gets one canned, valid answer in
the shape the request asked for: a call of the request's first tool (tool output), or the JSON
text (native or prompted output, or no tools), with usage estimated at ~4 bytes a token. It
parses just enough HTTP/1.1 (keep-alive, `Content-Length`) to be much cheaper than the clients it
serves, so that what a benchmark measures is the client.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

__all__ = ["ANSWER", "answer", "main"]

ANSWER: dict[str, Any] = {"category": "billing", "urgent": False}
"""What every request is answered (a `Triage`)."""


def answer(body: bytes) -> bytes:
    """The chat completion for one request body."""
    request: dict[str, Any] = json.loads(body)
    arguments = json.dumps(ANSWER)
    tools: list[dict[str, Any]] = request.get("tools") or []
    message: dict[str, Any] = {"role": "assistant", "content": None}
    if tools:
        name = tools[0]["function"]["name"]
        message["tool_calls"] = [
            {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}
        ]
        finish = "tool_calls"
    else:
        message["content"] = arguments
        finish = "stop"
    completion = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": request.get("model", "loopback"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": len(body) // 4,
            "completion_tokens": len(arguments) // 4,
            "total_tokens": len(body) // 4 + len(arguments) // 4,
        },
    }
    return json.dumps(completion).encode()


async def _serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            body = await reader.readexactly(length) if length else b"{}"
            payload = answer(body)
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _main() -> None:
    server = await asyncio.start_server(_serve_connection, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(f"http://127.0.0.1:{port}/v1", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin
    server.close()


def main() -> None:
    """Serve until stdin closes."""
    asyncio.run(_main())


if __name__ == "__main__":
    main()
