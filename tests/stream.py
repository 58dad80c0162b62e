"""A Streamlit client at the protocol level, as an attacker without a browser would be one: a
WebSocket to `/_stcore/stream` (subprotocol list: "streamlit", an XSRF token, and optionally a
session id to reconnect to), a `rerun_script` BackMsg, ForwardMsgs read until the run ends."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from google.protobuf.message import Message
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.sync.client import connect

_DONE = {ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_WITH_COMPILE_ERROR}


@dataclass
class Run:
    session_id: str | None
    texts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.texts)

    @property
    def signed_in(self) -> bool:
        return "Signed in as" in self.text

    @property
    def sign_in_form(self) -> bool:
        return 'autocomplete="username"' in self.text


def _strings(msg: Message) -> list[str]:
    out: list[str] = []
    for desc, value in msg.ListFields():
        values = value if getattr(desc, "is_repeated", False) else [value]
        for v in values:
            if isinstance(v, Message):
                out += _strings(v)
            elif isinstance(v, str):
                out.append(v)
    return out


def run_page(
    base: str,
    *,
    page: str = "",
    query: str = "lang=en",
    cookie: str | None = None,
    session_id: str | None = None,
    timeout: float = 60,
) -> Run:
    """One script run of `page` ("" for the Overview) as a browser with `cookie` (the value of
    kpi_session) would see it, reconnecting to `session_id` when given."""
    url = base.replace("http://", "ws://", 1) + "/_stcore/stream"
    headers = {"Origin": base}
    if cookie:
        headers["Cookie"] = f"kpi_session={cookie}"
    protocols = ["streamlit", "none", *([session_id] if session_id else [])]
    run = Run(None)
    with connect(
        url, subprotocols=protocols, additional_headers=headers, open_timeout=30, max_size=None
    ) as ws:
        back = BackMsg()
        back.rerun_script.query_string = query
        back.rerun_script.page_name = page
        ws.send(back.SerializeToString())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = ForwardMsg()
            msg.ParseFromString(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            kind = msg.WhichOneof("type")
            if kind == "new_session":
                run.session_id = msg.new_session.initialize.session_id
            elif kind == "delta":
                run.texts += _strings(msg.delta)
            elif kind == "script_finished" and msg.script_finished in _DONE:
                return run
    raise TimeoutError(f"the script run of {page or 'the Overview'} did not finish")
