"""An OpenAI-compatible model server that answers ``bot: <customer text>``.

The gateway is configured with a provider of ``api: "openai-completions"``
whose ``baseUrl`` is ``StubModel.base_url``; it then calls
``POST /v1/chat/completions`` (server-sent events when ``stream`` is set, which
is how the gateway calls it, or one JSON answer) and ``GET /v1/models``.

Every completion is recorded as a ``ModelCall`` so tests can count the model
turns a customer message caused. Test endpoints: ``GET /__test/calls`` lists
them, ``POST /__test/reset`` forgets them.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from inbox.devgateway.local_http import JsonHandler, LocalServer

MODEL_ID = "stub-model"
PROVIDER_ID = "stub"
# Fixed so tests can assert that usage reaches the transcript.
# OpenClaw's token for "nothing to say": the turn is kept out of the transcript.
SILENT_REPLY = "NO_REPLY"
USAGE = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}

# OpenClaw (2026.9.6) wraps the customer's words in its user turn:
#   "[Sat 2026-12-05 07:29 UTC] Conversation info: …```json{…}```\n\n<text>\n\n
#    Runtime: agent=main | …"
# and may add a separate user message that is only an internal-context block.
_INTERNAL_CONTEXT = re.compile(
    r"<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>.*?<<<END_OPENCLAW_INTERNAL_CONTEXT>>>",
    re.S,
)
# Hook runs (POST /hooks/agent) fence the caller's message behind a header:
#   "<<<EXTERNAL_UNTRUSTED_CONTENT id=…>>>\nSource: Webhook\nTask: Hook\n---\n
#    <text>\n<<<END_EXTERNAL_UNTRUSTED_CONTENT id=…>>>", amid a security notice.
_EXTERNAL_CONTENT = re.compile(
    r"<<<EXTERNAL_UNTRUSTED_CONTENT[^>]*>>>\n(?:.*?\n---\n)?(.*?)\n"
    r"<<<END_EXTERNAL_UNTRUSTED_CONTENT",
    re.S,
)
_LEADING_TIMESTAMP = re.compile(r"^\[[^\]\n]*\]\s*")
_METADATA_BLOCK = re.compile(r"(?:Conversation|Sender) info:.*?```json.*?```", re.S)


@dataclass(frozen=True)
class ModelCall:
    """One chat completion the gateway asked for."""

    last_user_text: str  # the customer's words, OpenClaw's wrapping removed
    prompt_text: str  # the last user turn as sent, wrapping included
    reply: str
    stream: bool
    message_count: int
    at: float  # time.time()


def customer_text(prompt: str) -> str:
    """The customer's own words inside one of OpenClaw's wrapped user turns."""
    external = _EXTERNAL_CONTENT.search(prompt)
    if external:
        return external.group(1).strip()
    text = _INTERNAL_CONTEXT.sub("", prompt).strip()
    text = _LEADING_TIMESTAMP.sub("", text)
    text = _METADATA_BLOCK.sub("", text)
    paragraphs = [part.strip() for part in text.split("\n\n")]
    return "\n\n".join(
        part for part in paragraphs if part and not part.startswith("Runtime: ")
    )


def default_reply(text: str) -> str:
    """``bot: <text>``; heartbeat polls get the silent answer a real model gives."""
    if _is_heartbeat_poll(text):
        return SILENT_REPLY
    return f"bot: {text}"


def _is_heartbeat_poll(text: str) -> bool:
    # `heartbeat.every: "0m"` stops only the schedule: a hook's completion
    # still wakes one heartbeat turn. Echoing its prompt would put that prompt
    # in the main session's transcript; NO_REPLY keeps the pair hidden.
    return "heartbeat" in text and SILENT_REPLY in text


class StubModel(LocalServer):
    """The stub model, in-process: ``start()``, ``url``, ``calls``, ``stop()``."""

    name = "stub-model"

    def __init__(
        self, *, port: int = 0, reply: Callable[[str], str] = default_reply
    ) -> None:
        super().__init__(port=port)
        self.reply = reply
        self._calls: list[ModelCall] = []

    @property
    def base_url(self) -> str:
        """What the gateway's provider config takes as ``baseUrl``."""
        return f"{self.url}/v1"

    @property
    def calls(self) -> list[ModelCall]:
        with self.lock:
            return list(self._calls)

    def calls_containing(self, marker: str) -> list[ModelCall]:
        """The calls whose customer text contains ``marker``."""
        return [call for call in self.calls if marker in call.last_user_text]

    def reset(self) -> None:
        with self.lock:
            self._calls.clear()

    def record(self, call: ModelCall) -> None:
        with self.lock:
            self._calls.append(call)


class _StubModelHandler(JsonHandler):
    owner: StubModel

    def handle_request(self, method: str, path: str, params: dict[str, Any]) -> None:
        path = path.rstrip("/")
        if path == "/__test/calls":
            self.send_json({"calls": [asdict(call) for call in self.owner.calls]})
        elif path == "/__test/reset" and method == "POST":
            self.owner.reset()
            self.send_json({"ok": True})
        elif path.endswith("/models"):
            self.send_json(
                {
                    "object": "list",
                    "data": [
                        {
                            "id": MODEL_ID,
                            "object": "model",
                            "created": 0,
                            "owned_by": PROVIDER_ID,
                        }
                    ],
                }
            )
        elif path.endswith("/chat/completions") and method == "POST":
            self._complete(params)
        else:
            self.send_json({"error": {"message": f"no route {path}"}}, status=404)

    def _complete(self, body: dict[str, Any]) -> None:
        messages = body.get("messages") or []
        prompt = _last_user_prompt(messages)
        text = customer_text(prompt)
        reply = self.owner.reply(text)
        stream = bool(body.get("stream"))
        self.owner.record(
            ModelCall(
                last_user_text=text,
                prompt_text=prompt,
                reply=reply,
                stream=stream,
                message_count=len(messages),
                at=time.time(),
            )
        )
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        created = int(time.time())
        if not stream:
            self.send_json(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": MODEL_ID,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": reply},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": USAGE,
                }
            )
            return
        self._stream(completion_id, created, reply)

    def _stream(self, completion_id: str, created: int, reply: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        # No Content-Length: the stream ends when the connection closes.
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

        def chunk(delta: dict[str, Any], finish: str | None = None) -> None:
            data: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": MODEL_ID,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            if finish:
                data["usage"] = USAGE  # as with stream_options.include_usage
            self.wfile.write(b"data: " + json.dumps(data).encode() + b"\n\n")
            self.wfile.flush()

        chunk({"role": "assistant", "content": ""})
        # Word by word, so the gateway sees a real stream of deltas.
        for word in re.findall(r"\S+\s*", reply):
            chunk({"content": word})
        chunk({}, "stop")
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


StubModel.handler_class = _StubModelHandler


def _last_user_prompt(messages: list[Any]) -> str:
    """The last user turn with words in it (internal-context blocks do not count)."""
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        text = _text_of(message.get("content"))
        if _INTERNAL_CONTEXT.sub("", text).strip():
            return text
    return ""


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and part.get("type", "text") == "text"
        )
    return ""
