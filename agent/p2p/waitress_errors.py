"""The peer endpoint's answer to a body waitress refuses before the app sees it.

waitress refuses a declared (or chunked) body over `max_request_body_size` itself, which keeps a
huge body from being read at all, but answers in plain text; a peer expects the protocol's CBOR
MessageTooLargeError (docs: the peer protocol's errors), as the app gives for a body it reads. The
channel class here makes waitress's 413 that same answer; its other errors are waitress's own.
"""

from __future__ import annotations

from typing import Any

from waitress.channel import HTTPChannel
from waitress.task import ErrorTask
from waitress.utilities import RequestEntityTooLarge

from agent.p2p.envelope import CONTENT_TYPE
from agent.p2p.service import PeerService


def peer_channel(service: PeerService) -> type[HTTPChannel]:
    """A waitress channel class whose 413 is service's MessageTooLargeError (set as a server's
    channel_class)."""

    class PeerErrorTask(ErrorTask):  # type: ignore[misc]
        def execute(self) -> None:
            if not isinstance(self.request.error, RequestEntityTooLarge):
                super().execute()
                return
            declared = int(getattr(self.request, "content_length", 0) or 0)
            chunked = bool(getattr(self.request, "chunked", False))
            status, body = (
                service.too_large(service.max_message_size + 1, at_least=True)
                if chunked or declared <= service.max_message_size
                else service.too_large(declared)
            )
            self.status = f"{status} Request Entity Too Large"
            self.response_headers.append(("Content-Type", CONTENT_TYPE))
            self.set_close_on_finish()
            self.content_length = len(body)
            self.write(body)

    class PeerChannel(HTTPChannel):  # type: ignore[misc]
        error_task_class: Any = PeerErrorTask

    return PeerChannel
