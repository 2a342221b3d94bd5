"""What every endpoint of one server shares: config, models, sessions and owners.

Endpoint modules (``app``, ``sessions_api``, ``webrtc``) import this and
:mod:`.auth`, never each other.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..config import ServerConfig
from ..engines.bundle import Engines
from ..metrics import Metrics
from ..protocol import CLOSE_TOO_FAST, ProtocolError, TooManySessions
from ..runtime import ModelPool
from .auth import TokenIssuer
from .fanout import Relay, RelayHub, UnknownSession
from .recording import Archive

if TYPE_CHECKING:
    from ..cluster.node import ClusterNode


class TooManyOffers(ProtocolError):
    code = "too_many_offers"
    close_code = CLOSE_TOO_FAST


@dataclass
class ServerState:
    cfg: ServerConfig
    engines: Engines | None = None
    pool: ModelPool | None = None
    active: set[str] = field(default_factory=set)
    owners: dict[str, str] = field(default_factory=dict)  # session id -> API key hash
    relays: RelayHub = field(init=False)  # sized from cfg in __post_init__
    tokens: TokenIssuer = field(default_factory=TokenIssuer)  # browsers' ?token=
    # Open bridges by (owner, bridge id): server/bridge.py (ids are per key).
    bridges: dict[tuple[str, str], Any] = field(default_factory=dict)
    metrics: Metrics = field(default_factory=Metrics)
    ready: bool = False
    shutting_down: bool = False
    archive: Archive | None = None  # the artefact store, webhooks (docs/privacy.md)
    drain_deadline: float = 0.0  # monotonic; set when draining starts
    cluster: ClusterNode | None = None  # with redis_url: registry, fan-out, limits
    _draining: asyncio.Future[None] | None = field(default=None, repr=False)
    _offers: dict[str, deque[float]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.relays = RelayHub(self.cfg.max_listeners_per_session, self.cfg.max_listeners_per_key)
        if self.cfg.cluster_secret:  # a token from any node is good on every node
            from ..cluster.codec import derive_key

            self.tokens = TokenIssuer(derive_key(self.cfg.cluster_secret.encode(), "tokens"))

    def count_offer(self, owner: str, now: float) -> None:
        """One WebRTC offer by ``owner`` (each makes the server gather and probe):
        raise TooManyOffers beyond ``webrtc_offers_per_minute``."""
        window = self._offers.setdefault(owner, deque())
        while window and window[0] < now - 60:
            window.popleft()
        if len(window) >= self.cfg.webrtc_offers_per_minute:
            raise TooManyOffers("too many WebRTC offers from this key; try in a minute")
        window.append(now)
        for key in [k for k, w in self._offers.items() if not w]:
            del self._offers[key]

    def admit(self, session_id: str, owner: str) -> None:
        """Count a new session in, or raise TooManySessions ("try later", 1013).

        Transports call :meth:`claim` (this, and the cluster's count) before starting
        a session and :meth:`leave` when it ends; running sessions are never
        affected by a refusal."""
        cfg = self.cfg
        if self.shutting_down or not self.ready:
            raise TooManySessions("server is not accepting sessions; try later")
        if len(self.active) >= cfg.max_sessions:
            raise TooManySessions("server is at capacity; try later")
        now = time.monotonic()
        if not self.has_headroom(now):
            self.metrics.admissions_refused.inc()
            raise TooManySessions("server is at its measured capacity; try later")
        per_key = cfg.sessions_per_key
        if per_key and sum(o == owner for o in self.owners.values()) >= per_key:
            raise TooManySessions("this API key is at its session limit; try later",
                                  "key_busy")
        self.active.add(session_id)
        self.owners[session_id] = owner
        if self.pool is not None:
            self.pool.load.admitted(now)

    def has_headroom(self, now: float) -> bool:
        """Whether the running sessions leave room for one more (runtime.LoadGauge):
        refused before running sessions start missing deadlines, not after."""
        return self.pool is None or self.pool.load.room(now)

    async def claim(self, session_id: str, owner: str) -> None:
        """:meth:`admit`, then (with a cluster) the per-key limit over all nodes.

        Raises TooManySessions; a refused or cancelled claim leaves nothing behind.
        Every transport calls this, and :meth:`leave` when the session ends."""
        self.admit(session_id, owner)
        per_key = self.cfg.sessions_per_key
        if self.cluster is None or not per_key:
            return
        try:
            admitted = await self.cluster.claim(session_id, owner, per_key)
        except BaseException:
            self.leave(session_id)
            raise
        if not admitted:
            self.leave(session_id)
            raise TooManySessions("this API key is at its session limit; try later",
                                  "key_busy")

    def leave(self, session_id: str) -> None:
        self.active.discard(session_id)
        self.owners.pop(session_id, None)
        if self.cluster is not None:
            self.cluster.release(session_id)

    async def find_relay(self, session_id: str, caller: str) -> Relay:
        """The relay a listener of ``caller`` follows: the local session's, or (with a
        cluster) a mirror of the session another node runs. UnknownSession when it
        is neither, or not the caller's; RelayUnavailable when Redis is down."""
        try:
            return self.relays.get(session_id, caller)
        except UnknownSession:
            if self.cluster is None:
                raise
        await self.cluster.mirror(self.relays, session_id, caller)
        return self.relays.get(session_id, caller)  # subscribe before the next await

    def drain_signal(self) -> asyncio.Future[None]:
        """Resolved when the server starts draining (:func:`drain_sessions`).

        One future shared by every session, created in the running loop.
        """
        if self._draining is None:
            self._draining = asyncio.get_running_loop().create_future()
        return self._draining
