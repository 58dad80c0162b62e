"""A Streamlit client at the protocol level, as an attacker without a browser would be one (and
as the load bench, bench/load.py, is many of): a WebSocket to `/_stcore/stream` (subprotocol
list: "streamlit", an XSRF token, and optionally a session id to reconnect to), a
`rerun_script` BackMsg, ForwardMsgs read until the run ends."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from google.protobuf.message import Message
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.sync.client import ClientConnection, connect

_DONE = {ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_WITH_COMPILE_ERROR}
COOKIE = "kpi_session"  # kpi_core.sessions.COOKIE (not imported: the bench may run elsewhere)


@dataclass
class Run:
    session_id: str | None
    texts: list[str] = field(default_factory=list)
    seconds: float = 0.0  # from the rerun request to the end of the run

    @property
    def text(self) -> str:
        return "\n".join(self.texts)

    @property
    def signed_in(self) -> bool:
        return "Signed in as" in self.text

    @property
    def sign_in_form(self) -> bool:
        return 'autocomplete="username"' in self.text

    @property
    def exception(self) -> str | None:
        """The first traceback the page showed, if any (a page must never show one)."""
        return next((t for t in self.texts if "Traceback" in t), None)


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


class Session:
    """One browser tab's WebSocket, kept open across script runs as a tab keeps it."""

    def __init__(
        self,
        base: str,
        *,
        cookie: str | None = None,
        session_id: str | None = None,
        timeout: float = 60,
    ):
        url = base.replace("http://", "ws://", 1) + "/_stcore/stream"
        headers = {"Origin": base}
        if cookie:
            headers["Cookie"] = f"{COOKIE}={cookie}"
        protocols = ["streamlit", "none", *([session_id] if session_id else [])]
        self.timeout = timeout
        self.session_id = session_id
        # Entered here, left in close(): a Session is itself the context manager.
        self._ws: ClientConnection = connect(
            url, subprotocols=protocols, additional_headers=headers, open_timeout=timeout,
            max_size=None,
        ).__enter__()  # fmt: skip

    def run(self, page: str = "", query: str = "lang=en", *, texts: bool = True) -> Run:
        """One script run of `page` ("" for the Overview) with `query`; `texts=False` skips
        collecting the page's strings (the bench only needs the time)."""
        back = BackMsg()
        back.rerun_script.query_string = query
        back.rerun_script.page_name = page
        run = Run(self.session_id)
        started = time.perf_counter()
        self._ws.send(back.SerializeToString())
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            msg = ForwardMsg()
            msg.ParseFromString(self._ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            kind = msg.WhichOneof("type")
            if kind == "new_session":
                self.session_id = run.session_id = msg.new_session.initialize.session_id
            elif kind == "delta" and (texts or msg.delta.WhichOneof("type") == "new_element"):
                if texts or msg.delta.new_element.WhichOneof("type") == "exception":
                    run.texts += _strings(msg.delta)
            elif kind == "script_finished" and msg.script_finished in _DONE:
                run.seconds = time.perf_counter() - started
                return run
        raise TimeoutError(f"the script run of {page or 'the Overview'} did not finish")

    def close(self) -> None:
        self._ws.__exit__(None, None, None)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
    with Session(base, cookie=cookie, session_id=session_id, timeout=timeout) as s:
        return s.run(page, query)
