"""A deterministic token ledger for benchmarks, and the bulk loader that puts it in a store.

`generate_ledger(n, parties=, seed=)` yields n valid, signed transactions of the fungible token in
back-chain order (parents first): issuances by a few banks, moves among the parties and exits back to
the issuer, every move and exit signed by the notary. The same arguments give byte-identical
transactions in any process, with or without signing workers: keys come from KeyPair.from_seed, salts
and every choice from one seeded random.Random, and Ed25519 signatures are deterministic.

How it stays fast: the shape of each transaction (who pays whom, which outputs it spends) is cheap
Python on ints; building and hashing it must stay in order, because a move names its parents by id;
only the signatures (half the cost) can be made elsewhere, so they are made in a pool of processes,
a chunk at a time, and put back in order.

A node's store holds the transactions relevant to it. For a fixture, one store holding the whole
generated ledger will do: `load` records every transaction, and the vault keeps the states of the
store's own keys (`our_keys`, usually `fixture_store_keys()`, the first party's) as a node would.
The notary's signature is made directly with its key: no uniqueness service runs, and none is needed,
because the generator never spends an output twice.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import random
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from itertools import islice
from typing import Any

from agent.ledger.identity import Party, X500Name
from agent.ledger.keys import SIGNATURE_SIZE, KeyPair, PublicKey
from agent.ledger.token import EXIT, ISSUE, MOVE, TOKEN_CONTRACT
from agent.ledger.transactions import (
    Command,
    SignedTransaction,
    StateRef,
    TransactionSignature,
    TransactionState,
    WireTransaction,
)
from agent.ledger.vault import StatesToRecord
from agent.store.ledger_store import LedgerStore

NOTARY_NAME = "O=Bench Notary, L=Zurich, C=CH"
CURRENCIES = ("GBP", "USD", "EUR", "CHF")
MAX_ISSUERS = 3
ISSUE_SHARE, EXIT_SHARE, SPLIT_SHARE, MERGE_SHARE = 0.05, 0.03, 0.10, 0.10
CHUNK = 1000  # transactions per signing job
IN_FLIGHT = 4  # signing jobs queued ahead of the consumer


@dataclass(frozen=True)
class Member:
    """A party of the fixture with its key pair: something that can sign."""

    party: Party
    keys: KeyPair


@dataclass(frozen=True)
class LedgerParties:
    """The parties (the first MAX_ISSUERS of them are the banks that issue) and the notary."""

    members: tuple[Member, ...]
    notary: Member

    @property
    def parties(self) -> tuple[Party, ...]:
        return tuple(m.party for m in self.members)

    @property
    def signing_keys(self) -> tuple[KeyPair, ...]:
        """Every member's keys, then the notary's: the index space of a transaction's signer list."""
        return (*(m.keys for m in self.members), self.notary.keys)


def party_name(index: int) -> str:
    """The X.500 name of party `index` (0-based): "O=Party0001, L=London, C=GB" for 0."""
    return f"O=Party{index + 1:04d}, L=London, C=GB"


def _key_seed(seed: int, role: str) -> bytes:
    return hashlib.sha256(f"ledger-agent bench fixture/{seed}/{role}".encode()).digest()


def _member(name: str, seed: int, role: str) -> Member:
    keys = KeyPair.from_seed(_key_seed(seed, role))
    return Member(Party(X500Name.parse(name), keys.public), keys)


@lru_cache(maxsize=16)
def ledger_parties(parties: int = 10, seed: int = 1) -> LedgerParties:
    """The parties and notary of the ledger generate_ledger(parties=, seed=) makes."""
    if parties < 2:
        raise ValueError(f"a ledger needs at least 2 parties, got {parties}")
    members = tuple(_member(party_name(i), seed, f"party/{i}") for i in range(parties))
    return LedgerParties(members, _member(NOTARY_NAME, seed, "notary"))


def fixture_store_keys(parties: int = 10, seed: int = 1) -> frozenset[PublicKey]:
    """our_keys for a store that loads the fixture: the first party's key."""
    return frozenset({ledger_parties(parties, seed).members[0].party.owning_key})


# An unspent output in the generator's pool: its ref, its amount, and its group (issuer * 4 + currency).
_Holding = tuple[StateRef, int, int]


class _Shaper:
    """Decides and builds the unsigned transactions, in order; each comes with its signers' indexes."""

    def __init__(self, cast: LedgerParties, seed: int, pool_target: int) -> None:
        self.rng = random.Random(seed)
        self.parties = cast.parties
        self.count = len(self.parties)
        self.issuers = min(MAX_ISSUERS, self.count)
        self.notary = cast.notary.party
        self.notary_index = self.count
        self.pool_target = pool_target
        self.pool: list[list[_Holding]] = [[] for _ in self.parties]
        self.pool_size = 0
        # Shared, never mutated: every state of one party carries the same party dict.
        self.party_data = [{"name": str(p.name), "key": p.owning_key.raw} for p in self.parties]
        self.issue_commands = [
            Command(TOKEN_CONTRACT, ISSUE, (p.owning_key,)) for p in self.parties[: self.issuers]
        ]
        self.move_commands = [Command(TOKEN_CONTRACT, MOVE, (p.owning_key,)) for p in self.parties]

    def state(self, amount: int, group: int, owner: int) -> TransactionState:
        issuer, currency = divmod(group, len(CURRENCIES))
        data = {
            "amount": amount,
            "currency": CURRENCIES[currency],
            "issuer": self.party_data[issuer],
            "owner": self.party_data[owner],
        }
        return TransactionState(TOKEN_CONTRACT, data, (self.parties[owner],))

    def next(self) -> tuple[WireTransaction, tuple[int, ...]]:
        rng = self.rng
        roll = rng.random()
        if self.pool_size == 0 or roll < ISSUE_SHARE:
            return self._issue()
        if roll < ISSUE_SHARE + EXIT_SHARE:
            return self._exit()
        return self._move()

    def _wire(
        self, inputs: list[_Holding], outputs: list[tuple[int, int, int]], command: Command
    ) -> WireTransaction:
        """Build the transaction from (amount, group, owner) outputs, and pool its outputs."""
        wtx = WireTransaction(
            inputs=tuple(h[0] for h in inputs),
            references=(),
            outputs=tuple(self.state(*o) for o in outputs),
            commands=(command,),
            notary=self.notary,
            time_window=None,
            salt=self.rng.randbytes(32),
        )
        tx_id = wtx.id
        for index, (amount, group, owner) in enumerate(outputs):
            self.pool[owner].append((StateRef(tx_id, index), amount, group))
        self.pool_size += len(outputs) - len(inputs)
        return wtx

    def _issue(self) -> tuple[WireTransaction, tuple[int, ...]]:
        rng = self.rng
        issuer = rng.randrange(self.issuers)
        group = issuer * len(CURRENCIES) + rng.randrange(len(CURRENCIES))
        outputs = [
            (rng.randint(1_000, 1_000_000), group, rng.randrange(self.count))
            for _ in range(rng.randint(1, 3))
        ]
        return self._wire([], outputs, self.issue_commands[issuer]), (issuer,)

    def _take(self, owner: int, index: int) -> _Holding:
        held = self.pool[owner]
        taken = held[index]
        held[index] = held[-1]
        held.pop()
        return taken

    def _holder(self) -> int:
        """A random party that holds something (the pool is never empty here)."""
        rng = self.rng
        while True:
            owner = rng.randrange(self.count)
            if self.pool[owner]:
                return owner

    def _other(self, owner: int) -> int:
        other = self.rng.randrange(self.count - 1)
        return other + 1 if other >= owner else other

    def _move(self) -> tuple[WireTransaction, tuple[int, ...]]:
        rng = self.rng
        owner = self._holder()
        held = self.pool[owner]
        first = self._take(owner, rng.randrange(len(held)))
        inputs = [first]
        shrink = self.pool_size > self.pool_target
        if held and (shrink or rng.random() < MERGE_SHARE):
            # Merge a second holding of the same issuer and currency, if a few probes find one.
            for _ in range(4):
                index = rng.randrange(len(held))
                if held[index][2] == first[2]:
                    inputs.append(self._take(owner, index))
                    break
        total = sum(h[1] for h in inputs)
        group = first[2]
        # Over the pool target, pay everything (no change): the pool shrinks back.
        paid = total if shrink else rng.randint(1, total)
        outputs: list[tuple[int, int, int]] = []
        if not shrink and paid >= 2 and rng.random() < SPLIT_SHARE:
            part = rng.randint(1, paid - 1)
            outputs.append((part, group, self._other(owner)))
            outputs.append((paid - part, group, self._other(owner)))
        else:
            outputs.append((paid, group, self._other(owner)))
        if total > paid:
            outputs.append((total - paid, group, owner))
        return self._wire(inputs, outputs, self.move_commands[owner]), (owner, self.notary_index)

    def _exit(self) -> tuple[WireTransaction, tuple[int, ...]]:
        rng = self.rng
        owner = self._holder()
        held = self.pool[owner]
        taken = self._take(owner, rng.randrange(len(held)))
        _, amount, group = taken
        issuer, currency = divmod(group, len(CURRENCIES))
        exited = rng.randint(1, amount)
        # As exit_tokens() builds it: signers sorted by key, the issuer's party data in the args.
        signers = sorted({owner, issuer}, key=lambda i: self.parties[i].owning_key)
        args = {"amount": exited, "currency": CURRENCIES[currency], "issuer": self.party_data[issuer]}
        command = Command(TOKEN_CONTRACT, EXIT, tuple(self.parties[i].owning_key for i in signers), args)
        outputs = [(amount - exited, group, owner)] if amount > exited else []
        return self._wire([taken], outputs, command), (*signers, self.notary_index)


# -- signing, in this process or in a pool -----------------------------------------------------------

_worker_keys: list[KeyPair] = []  # a signing process's keys, set once by _init_signer


def _init_signer(parties: int, seed: int) -> None:
    _worker_keys[:] = ledger_parties(parties, seed).signing_keys


def _sign_chunk(ids: bytes, counts: bytes, signers: bytes) -> bytes:
    """Sign a chunk: ids are 32 bytes each, counts one byte per id, signers 2 bytes per signature.

    One bytes object each way: pickling a list of small objects per transaction would cost the
    main process (which is the bottleneck) more than the signing it hands off.
    """
    keys = _worker_keys
    who = array("H", signers)
    out = []
    at = 0
    for n, count in enumerate(counts):
        tx_id = ids[32 * n : 32 * n + 32]
        for i in who[at : at + count]:
            out.append(keys[i].sign(tx_id))
        at += count
    return b"".join(out)


def _sign_job(batch: list[tuple[WireTransaction, tuple[int, ...]]]) -> tuple[bytes, bytes, bytes]:
    ids = b"".join([bytes(wtx.id) for wtx, _ in batch])
    counts = bytes([len(signers) for _, signers in batch])
    return ids, counts, array("H", [i for _, signers in batch for i in signers]).tobytes()


def _assemble(
    batch: list[tuple[WireTransaction, tuple[int, ...]]], sigs: bytes, publics: list[PublicKey]
) -> Iterator[SignedTransaction]:
    at = 0
    for wtx, signers in batch:
        made = []
        for i in signers:
            made.append(TransactionSignature(publics[i], sigs[at : at + SIGNATURE_SIZE]))
            at += SIGNATURE_SIZE
        yield SignedTransaction(wtx, tuple(made))


def generate_ledger(
    n: int,
    *,
    parties: int = 10,
    seed: int = 1,
    pool_target: int | None = None,
    workers: int = 0,
    chunk: int = CHUNK,
) -> Iterator[SignedTransaction]:
    """n signed token transactions, parents first; identical for identical (n, parties, seed, pool_target).

    pool_target (default 100 per party) holds the unspent outputs near it: above it, moves merge
    where they can and pay in full, so the back-chains deepen instead of widening (at 50,000
    transactions with the defaults: mean depth 31, deepest 126). workers > 0 signs in that many
    processes (spawned); the transactions are the same either way.
    """
    if n < 0:
        raise ValueError(f"n must not be negative, got {n}")
    cast = ledger_parties(parties, seed)
    shaper = _Shaper(cast, seed, pool_target if pool_target is not None else 100 * parties)
    publics = [k.public for k in cast.signing_keys]
    shapes = (shaper.next() for _ in range(n))
    if workers <= 0:
        keys = cast.signing_keys
        for wtx, signers in shapes:
            tx_id = bytes(wtx.id)
            yield SignedTransaction(
                wtx, tuple(TransactionSignature(publics[i], keys[i].sign(tx_id)) for i in signers)
            )
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_init_signer, initargs=(parties, seed)) as pool:
        pending: deque[tuple[list[tuple[WireTransaction, tuple[int, ...]]], Any]] = deque()
        while batch := list(islice(shapes, chunk)):
            pending.append((batch, pool.apply_async(_sign_chunk, _sign_job(batch))))
            if len(pending) > IN_FLIGHT:
                done, result = pending.popleft()
                yield from _assemble(done, result.get(), publics)
        while pending:
            done, result = pending.popleft()
            yield from _assemble(done, result.get(), publics)


def load(
    store: LedgerStore,
    n: int,
    *,
    parties: int = 10,
    seed: int = 1,
    pool_target: int | None = None,
    batch_size: int = 20_000,
    skip: Callable[[int, SignedTransaction], bool] | None = None,
    workers: int = 0,
    states_to_record: StatesToRecord = StatesToRecord.ONLY_RELEVANT,
    timestamp: datetime | None = None,
) -> int:
    """Bulk-record the ledger's first n transactions, less those skip(index, stx) is true for; the count.

    Skipped transactions leave their descendants in place, as in a node that missed some: two stores
    loaded from one (n, seed) with different skips differ by exactly the skipped transactions.
    batch_size is rows per commit (20,000 measured faster than 5,000 at a million rows).
    """
    txs: Iterator[SignedTransaction] = generate_ledger(
        n, parties=parties, seed=seed, pool_target=pool_target, workers=workers
    )
    if skip is not None:
        chosen = skip
        txs = (stx for index, stx in enumerate(txs) if not chosen(index, stx))
    return store.bulk_record(
        txs, states_to_record=states_to_record, timestamp=timestamp, batch_size=batch_size
    )
