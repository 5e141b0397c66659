"""The peer protocol: signed, replay-proof messages between agents over a pluggable transport.

envelope       the message and its wire form (canonical CBOR, signed body), error replies
authenticator  seal and open: signature against the network map, recipient, timestamp, nonce
service        the receiving end: dispatch by topic, sealed replies with HTTP-like statuses
client         the sending end and the RawTransport port it depends on; retries transient failures
retry          bounded, jittered exponential back-off
http           the HTTP adapter (httpx client, Flask app); inprocess the in-process one
"""

from agent.p2p.authenticator import MessageAuthenticator
from agent.p2p.client import PeerClient, RawTransport
from agent.p2p.envelope import Envelope
from agent.p2p.inprocess import InProcessNetwork, InProcessTransport
from agent.p2p.retry import RetryPolicy
from agent.p2p.service import PeerService

__all__ = [
    "Envelope",
    "InProcessNetwork",
    "InProcessTransport",
    "MessageAuthenticator",
    "PeerClient",
    "PeerService",
    "RawTransport",
    "RetryPolicy",
]
