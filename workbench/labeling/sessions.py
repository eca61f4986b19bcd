"""Labeling sessions: who judges which pair next, and the append-only log of their votes.

Every vote and every undo is a new row in ``labeling_events``; nothing is updated or deleted,
so the log is the audit trail and exports can always be rebuilt from it. ``labeling_current``
is a derived index (one row per annotator and pair: the vote that currently counts), written
in the same transaction as the event, so "what is left for Alice" is one indexed query.

A vote is acknowledged only after its transaction commits (WAL, ``synchronous=FULL``): an
acknowledged vote survives a crash. A client that did not get the acknowledgement retries
with the same ``request_id``; the store answers with the original event instead of a copy.
"""
from __future__ import annotations

import hashlib
import json
import math
import secrets
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from workbench.data.types import Judgment, Outcome, Pair, pair_sources
from workbench.db import Connection
from workbench.labeling.errors import Conflict, Forbidden, Invalid, NotFound
from workbench.labeling.selection import hold, open_pairs, random_rank, rank_active, rank_uncertain, repeat_pick, reserve
from workbench.labeling.uncertain import DEFAULT_REFIT_EVERY, MODEL_UNCERTAIN, ModelFeatures, PairFeatures, UncertainOrder
from workbench.preference.bradley_terry import BTResult, Comparisons, fit_bradley_terry
from workbench.settings import Settings
from workbench.store import NAME_MAX, PAIR_COLUMNS, Store, name_problem, row_pair

ORDERS = ("sequential", "random", "active", MODEL_UNCERTAIN)
REPEAT_SHARE_MAX = 0.5  # at most one repeat per first vote: each pair is repeated at most once
ASPECT_OUTCOMES = ("A", "B", "tie")
CHOICES = ("left", "right", "tie", "both_bad", "skip")  # what an annotator picks, in displayed terms
ASPECT_CHOICES = ("left", "right", "tie")
RATIONALE_MAX = 10_000
DatasetVersion = tuple[int, float, int]  # (dataset row id, import time, pairs): a replaced dataset is another version


@dataclass
class SessionSettings:
    """What a session asks of its annotators.

    ``overlap`` is how many annotators should judge each pair; ``gold`` maps pair ids with a
    known answer ("A", "B" or "tie") that every annotator sees, to measure their accuracy;
    ``order`` is how the next pair is picked. The model fields name what the post-vote panel
    scores with (catalog names; empty = not shown). ``annotators`` lists the logins assigned
    to the session (empty: every annotator login may label while it is open); a pair served
    to someone stays reserved for them for ``lease_seconds`` of idle time.

    ``order="model-uncertain"`` reads the responses' features from ``uncertainty_model`` (a
    catalog name or path; empty: ``policy_model``) at ``uncertainty_layer`` (0: the middle
    layer) and refits its reward head every ``refit_every`` decisive votes. ``repeat_share``
    (0 to 0.5) is the share of each annotator's items that are hidden repeats of pairs they
    already voted on (sides swapped, not announced); a repeat's vote is kept apart from their
    first (``LabelingStore.repeats``) and measures their self-consistency.
    """

    aspects: list[str] = field(default_factory=list)
    overlap: int = 1
    gold: dict[str, str] = field(default_factory=dict)
    order: str = "sequential"
    policy_model: str = ""
    reference_model: str = ""
    reward_model: str = ""
    beta: float = 0.1
    annotators: list[str] = field(default_factory=list)
    lease_seconds: float = 600.0
    uncertainty_model: str = ""
    uncertainty_layer: int = 0
    refit_every: int = DEFAULT_REFIT_EVERY
    repeat_share: float = 0.0

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SessionSettings:
        data = dict(data or {})
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise Invalid(f"Unknown session setting(s): {', '.join(unknown)}.",
                          hint=f"Known settings: {', '.join(cls.__dataclass_fields__)}.")
        return cls(**data)

    def check(self, pair_ids: set[str]) -> None:
        """Refuse settings that would make a session that cannot be labelled as meant."""
        if not isinstance(self.overlap, int) or self.overlap < 1:
            raise Invalid(f"overlap must be a whole number ≥ 1, got {self.overlap!r}.", hint="Use 1 for one vote per pair, 3 for three.")
        if self.order not in ORDERS:
            raise Invalid(f"Unknown pair order {self.order!r}.", hint=f"Choose one of: {', '.join(ORDERS)}.")
        if not isinstance(self.aspects, list) or not all(isinstance(a, str) and a.strip() for a in self.aspects):
            raise Invalid("aspects must be a list of non-empty names.", hint="E.g. ['helpfulness', 'verbosity'].")
        if len(set(self.aspects)) != len(self.aspects):
            raise Invalid("An aspect is listed twice.", hint="Give each aspect once.")
        for pid, answer in self.gold.items():
            if pid not in pair_ids:
                raise NotFound(f"Gold pair '{pid}' is not in the dataset.", hint="Use ids from the session's dataset.")
            if answer not in ASPECT_OUTCOMES:
                raise Invalid(f"Gold answer for '{pid}' is {answer!r}.", hint="Gold answers are 'A', 'B' or 'tie'.")
        if not (isinstance(self.beta, int | float) and self.beta > 0):
            raise Invalid(f"beta must be a positive number, got {self.beta!r}.", hint="DPO commonly uses 0.1.")
        if not isinstance(self.annotators, list):
            raise Invalid("annotators must be a list of login names.", hint="E.g. ['alice', 'bob'], or [] for every annotator.")
        for who in self.annotators:
            _name(who, "Annotator name")
        if isinstance(self.lease_seconds, bool) or not (isinstance(self.lease_seconds, int | float) and self.lease_seconds > 0):
            raise Invalid(f"lease_seconds must be a positive number, got {self.lease_seconds!r}.",
                          hint="How long a served pair stays reserved for an idle annotator, e.g. 600.")
        share = self.repeat_share
        if isinstance(share, bool) or not isinstance(share, int | float) or not math.isfinite(share) or not 0 <= share <= REPEAT_SHARE_MAX:
            raise Invalid(f"repeat_share must be a number from 0 to {REPEAT_SHARE_MAX}, got {str(share)[:40]!r}.",
                          hint="The share of each annotator's items that are hidden repeats of pairs they already voted on, "
                               "e.g. 0.1 for one item in ten; 0 for none. Above 0.5 a pair would have to be repeated twice.")
        if isinstance(self.refit_every, bool) or not isinstance(self.refit_every, int) or self.refit_every < 1:
            raise Invalid(f"refit_every must be a whole number ≥ 1, got {self.refit_every!r}.",
                          hint=f"How many new decisive votes trigger a refit of the model-uncertain head, e.g. {DEFAULT_REFIT_EVERY}.")
        if isinstance(self.uncertainty_layer, bool) or not isinstance(self.uncertainty_layer, int) or self.uncertainty_layer < 0:
            raise Invalid(f"uncertainty_layer must be a whole number ≥ 0, got {self.uncertainty_layer!r}.",
                          hint="The layer whose residual stream the model-uncertain head reads; 0 for the middle layer.")
        if not isinstance(self.uncertainty_model, str):
            raise Invalid("uncertainty_model must be a model name.", hint="A catalog name or path, or empty for the policy model.")
        if self.order == MODEL_UNCERTAIN and not (self.uncertainty_model.strip() or str(self.policy_model).strip()):
            raise Invalid("The model-uncertain order needs a model whose features its reward head reads.",
                          hint="Set the policy model (or uncertainty_model), e.g. SmolLM2-135M-Instruct.")


@dataclass
class SessionInfo:
    id: int
    name: str
    dataset: str
    settings: SessionSettings
    status: str
    created_at: float
    n_pairs: int

    def assigned_to(self, annotator: str | None) -> bool:
        """Whether ``annotator`` may label here: listed in the settings, or any open session when none are listed."""
        listed = self.settings.annotators
        return annotator in listed if listed else self.status == "open"

    def to_dict(self, *, gold: bool = True) -> dict[str, Any]:
        """The session as JSON; ``gold=False`` (an annotator's view) gives only how many gold pairs there are."""
        settings = asdict(self.settings)
        if not gold:
            settings["gold"] = {}
            settings["n_gold"] = len(self.settings.gold)
        return {**asdict(self), "settings": settings}


@dataclass
class Item:
    """One pair as one annotator sees it: ``left``/``right`` already in displayed order."""

    session: str
    annotator: str
    pair: Pair
    displayed_order: str
    position: int  # 1-based: this is item ``position`` of ``total`` for the annotator
    total: int
    current: dict[str, Any] | None = None  # the annotator's own vote, when revisiting

    @property
    def left(self) -> str:
        return self.pair.response_a if self.displayed_order == "AB" else self.pair.response_b

    @property
    def right(self) -> str:
        return self.pair.response_b if self.displayed_order == "AB" else self.pair.response_a

    def to_dict(self) -> dict[str, Any]:
        """The API view: content and displayed order, never the canonical A/B or others' votes."""
        return {"session": self.session, "annotator": self.annotator, "pair_id": self.pair.id,
                "prompt": self.pair.prompt, "left": self.left, "right": self.right,
                "displayed_order": self.displayed_order, "position": self.position, "total": self.total,
                "current": self.current}


@dataclass
class VoteAck:
    event_id: int
    pair_id: str
    outcome: str
    replayed: bool = False


@dataclass
class Progress:
    done: int
    total: int
    seconds_per_item: float | None
    eta_seconds: float | None

    @property
    def remaining(self) -> int:
        return self.total - self.done


def assigned_order(session_id: int, annotator: str, pair_id: str) -> str:
    """The A/B order one annotator sees for one pair: random across pairs, stable across reloads."""
    digest = hashlib.sha256(f"order:{session_id}:{annotator}:{pair_id}".encode()).digest()
    return "AB" if digest[0] % 2 == 0 else "BA"


def repeat_order(session_id: int, annotator: str, pair_id: str) -> str:
    """The A/B order of a hidden repeat: the sides swapped from the first showing."""
    return "BA" if assigned_order(session_id, annotator, pair_id) == "AB" else "AB"


@dataclass
class _RepeatPlan:
    pick: str | None  # the pair to show again now
    remaining: int  # repeats still to come, this one included
    n_repeats: int  # repeats voted on so far


def to_canonical(choice: str, order: str) -> str:
    """A displayed choice (left/right/tie/both_bad/skip) as a canonical outcome."""
    if choice == "left":
        return order[0]
    if choice == "right":
        return order[1]
    return choice


def to_displayed(outcome: str | None, order: str) -> str | None:
    """A canonical outcome in the annotator's terms (A shown on the right is 'right')."""
    if outcome in ("A", "B"):
        return "left" if order[0] == outcome else "right"
    return outcome


def _payload_hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _name(value: Any, what: str) -> str:
    problem = name_problem(value)
    if problem:
        raise Invalid(f"{what} {str(value)[:40]!r} cannot be used: {problem}.",
                      hint=f"Give the {what.lower()} as plain text of at most {NAME_MAX} characters, e.g. 'alice'.")
    return value.strip()


class LabelingStore:
    """Sessions, annotators and votes in the workbench store; safe to share between threads."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time, features: PairFeatures | None = None) -> None:
        """``clock`` dates pair leases; wall-clock seconds, since other processes read them too.

        ``features`` gives the response features of ``model-uncertain`` sessions; by default a
        ``ModelFeatures`` over the store's home folder loads the session's model on the first
        refit (an app passes one over its own model service and activation cache instead).
        """
        self.store = store
        self.clock = clock
        self.uncertain = UncertainOrder(features, default=self._default_features)
        # Per dataset row: (its version, what was read for it). A replaced dataset is a new row, but
        # SQLite may give it the same id; its import time and size tell the versions apart.
        self._pair_cache: dict[int, tuple[DatasetVersion, tuple[list[str], dict[str, tuple[str, str]]]]] = {}
        self._fit_pairs: dict[int, tuple[DatasetVersion, list[Pair]]] = {}  # its pairs, for the model-uncertain refits
        self._bt_cache: dict[int, tuple[int, BTResult | None]] = {}
        self._rank_cache: dict[tuple[int, str], tuple[list[str], list[str]]] = {}
        self._tokens: dict[tuple[str, str], tuple[str]] = {}

    def _default_features(self) -> PairFeatures:
        # The home holding the SQLite store; a PostgreSQL store has none of its own: the settings' home.
        return ModelFeatures(Settings(home=self.store.path.parent) if self.store.url is None else Settings())

    # -- sessions --------------------------------------------------------------------------

    def create_session(self, name: str, dataset: str, settings: SessionSettings | dict[str, Any] | None = None) -> SessionInfo:
        """A new open session over a stored dataset."""
        name = _name(name, "Session name")
        settings = settings if isinstance(settings, SessionSettings) else SessionSettings.from_dict(settings)
        with self.store.transaction() as conn:
            ids, _ = self._dataset_pairs(conn, dataset)
            settings.check(set(ids))
            if conn.execute("SELECT 1 FROM labeling_sessions WHERE name = ?", (name,)).fetchone():
                raise Conflict(f"A labeling session named '{name}' already exists.", hint="Choose another name or open that session.")
            conn.execute("INSERT INTO labeling_sessions (name, dataset, settings, created_at) VALUES (?, ?, ?, ?)",
                         (name, dataset, json.dumps(asdict(settings)), time.time()))
        return self.session(name)

    def session(self, name: str) -> SessionInfo:
        with self.store.snapshot() as conn:
            return self._session(conn, name)

    def list_sessions(self) -> list[SessionInfo]:
        with self.store.snapshot() as conn:
            names = [r[0] for r in conn.execute("SELECT name FROM labeling_sessions ORDER BY id")]
            return [self._session(conn, n) for n in names]

    def set_status(self, name: str, status: str) -> SessionInfo:
        """Close a session (no more votes) or reopen it."""
        if status not in ("open", "closed"):
            raise Invalid(f"Unknown session status {status!r}.", hint="Use 'open' or 'closed'.")
        with self.store.transaction() as conn:
            sid = self._session(conn, name).id
            conn.execute("UPDATE labeling_sessions SET status = ? WHERE id = ?", (status, sid))
            conn.execute("DELETE FROM labeling_leases WHERE session_id = ?", (sid,))  # a closed session holds no pair
        return self.session(name)

    def pairs(self, name: str) -> list[Pair]:
        return self.store.get_pairs(self.session(name).dataset)

    def _session(self, conn: Connection, name: str) -> SessionInfo:
        row = conn.execute("SELECT id, name, dataset, settings, status, created_at FROM labeling_sessions WHERE name = ?",
                           (name,)).fetchone()
        if row is None:
            known = [r[0] for r in conn.execute("SELECT name FROM labeling_sessions ORDER BY id")]
            raise NotFound(f"No labeling session named '{name}'.",
                           hint=f"Known sessions: {', '.join(known)}." if known else "Create one first (create_session).")
        ids, _ = self._dataset_pairs(conn, row[2])
        return SessionInfo(row[0], row[1], row[2], SessionSettings(**json.loads(row[3])), row[4], row[5], len(ids))

    @staticmethod
    def _dataset_version(conn: Connection, dataset: str) -> DatasetVersion:
        row = conn.execute("SELECT id, created_at, n_pairs FROM datasets WHERE name = ?", (dataset,)).fetchone()
        if row is None:
            raise NotFound(f"No dataset named '{dataset}'.", hint="Import it first (workbench data import).")
        return int(row[0]), float(row[1]), int(row[2])

    def _dataset_pairs(self, conn: Connection, dataset: str) -> tuple[list[str], dict[str, tuple[str, str]]]:
        """Pair ids in dataset order and each pair's (source A, source B), cached per dataset version."""
        version = self._dataset_version(conn, dataset)
        cached = self._pair_cache.get(version[0])
        if cached is None or cached[0] != version:
            ids, sources = [], {}
            for pid, meta in conn.execute("SELECT pair_id, metadata FROM pairs WHERE dataset_id = ? ORDER BY position", (version[0],)):
                ids.append(pid)
                src = pair_sources(json.loads(meta))
                if src:
                    sources[pid] = src
            cached = self._pair_cache[version[0]] = (version, (ids, sources))
        return cached[1]

    # -- annotators ------------------------------------------------------------------------

    def join(self, session: str, annotator: str) -> str:
        """Register ``annotator`` in ``session`` (once) and return their secret API token."""
        annotator = _name(annotator, "Annotator name")
        with self.store.transaction() as conn:
            sid = self._session(conn, session).id
            row = conn.execute("SELECT token FROM labeling_annotators WHERE session_id = ? AND name = ?", (sid, annotator)).fetchone()
            if row:
                return row[0]
            token = secrets.token_urlsafe(24)
            conn.execute("INSERT INTO labeling_annotators (session_id, name, token, created_at) VALUES (?, ?, ?, ?)",
                         (sid, annotator, token, time.time()))
            return token

    def annotators(self, session: str) -> list[str]:
        with self.store.snapshot() as conn:
            sid = self._session(conn, session).id
            return [r[0] for r in conn.execute("SELECT name FROM labeling_annotators WHERE session_id = ? ORDER BY id", (sid,))]

    def authenticate(self, session: str, annotator: str, token: str | None) -> None:
        """Refuse a request whose token is missing or belongs to someone else (constant-time compare).

        Tokens never change once issued (sessions and annotators are never deleted), so each
        is read from the store once and then checked from memory on every vote.
        """
        row = self._tokens.get((session, annotator))
        if row is None:
            with self.store.snapshot() as conn:
                sid = self._session(conn, session).id
                row = conn.execute("SELECT token FROM labeling_annotators WHERE session_id = ? AND name = ?", (sid, annotator)).fetchone()
            if row is not None:
                self._tokens[(session, annotator)] = row
        if row is None:
            raise NotFound(f"'{annotator}' has not joined session '{session}'.", hint="Join first: POST .../annotators with your name.")
        if not token or not secrets.compare_digest(token.encode(), row[0].encode()):
            raise Forbidden(f"This token does not belong to annotator '{annotator}' of session '{session}'.",
                            hint="Use the token you got when you joined; each annotator can only vote as themselves.")

    def _annotator_id(self, conn: Connection, sid: int, session: str, annotator: str) -> int:
        row = conn.execute("SELECT id FROM labeling_annotators WHERE session_id = ? AND name = ?", (sid, annotator)).fetchone()
        if row is None:
            raise NotFound(f"'{annotator}' has not joined session '{session}'.", hint="Call join(session, annotator) first.")
        return row[0]

    # -- what to judge next ----------------------------------------------------------------

    def next_item(self, session: str, annotator: str) -> Item | None:
        """The next pair for ``annotator``, now reserved for them (None when none is free for them).

        None with pairs still left (``progress``) means every open pair is being judged by
        as many others as the overlap allows; asking again later finds one. The queue comes
        from a snapshot read outside any write; only the reservation (``selection.reserve``),
        confirmed by a fresh indexed count of the candidates' votes, runs in a write
        transaction, grouped with the other writes queued meanwhile (one fsync for all).
        With ``repeat_share`` set, some items are hidden repeats (``selection.repeat_pick``):
        a pair they voted on, held for them, sides swapped, counted in the position like any item.
        """
        now = self.clock()
        with self.store.snapshot() as conn:
            info = self._session(conn, session)
            aid = self._annotator_id(conn, info.id, session, annotator)
            queue, done, counts = self._queue(conn, info, aid, annotator)
            plan = self._repeat_plan(conn, info, aid, annotator, len(queue), now) if info.settings.repeat_share > 0 else None
        s = info.settings
        served, to_come = done, len(queue)
        if plan is not None:
            served, to_come = done + plan.n_repeats, len(queue) + plan.remaining
            if plan.pick is not None:
                self.store.write_batched(lambda conn: hold(conn, info.id, aid, plan.pick, s.lease_seconds, now))
                with self.store.snapshot() as conn:
                    pair = self._pair(conn, info, plan.pick)
                return Item(session, annotator, pair, repeat_order(info.id, annotator, pair.id), served + 1, served + to_come)
        pick = self.store.write_batched(lambda conn: reserve(conn, info.id, aid, queue, counts, s.overlap, s.gold,
                                                             s.lease_seconds, now))
        if pick is None:
            return None
        with self.store.snapshot() as conn:
            pair = self._pair(conn, info, pick)
        return Item(session, annotator, pair, assigned_order(info.id, annotator, pair.id), served + 1, served + to_come)

    def item(self, session: str, annotator: str, pair_id: str) -> Item:
        """A given pair for ``annotator`` (to revisit from the history), with their current vote."""
        with self.store.snapshot() as conn:
            info = self._session(conn, session)
            aid = self._annotator_id(conn, info.id, session, annotator)
            pair = self._pair(conn, info, pair_id)
            queue, done, _ = self._queue(conn, info, aid, annotator, rank=False)
            current = self._current(conn, info.id, aid, pair_id)
            mine = [r[0] for r in conn.execute(
                "SELECT pair_id FROM labeling_current WHERE session_id = ? AND annotator_id = ? ORDER BY event_id", (info.id, aid))]
            plan = self._repeat_plan(conn, info, aid, annotator, len(queue), None) if info.settings.repeat_share > 0 else None
        extra, coming = (plan.n_repeats, plan.remaining) if plan is not None else (0, 0)
        position = mine.index(pair_id) + 1 if pair_id in mine else done + extra + 1
        return Item(session, annotator, pair, assigned_order(info.id, annotator, pair_id), position,
                    done + extra + len(queue) + coming, current)

    def _pair(self, conn: Connection, info: SessionInfo, pair_id: Any) -> Pair:
        # The row itself says whether the pair exists: no set of every pair id built per vote
        # (at 10,000 pairs that set was most of a vote's CPU time; benchmarks/labeling.py).
        columns = ", ".join(f"p.{c}" for c in PAIR_COLUMNS.split(", "))
        row = None if not isinstance(pair_id, str) else conn.execute(
            f"SELECT {columns} FROM pairs p JOIN datasets d ON d.id = p.dataset_id WHERE d.name = ? AND p.pair_id = ?",
            (info.dataset, pair_id)).fetchone()
        if row is None:
            raise NotFound(f"Session '{info.name}' has no pair with id {str(pair_id)[:60]!r}.",
                           hint=f"Its dataset '{info.dataset}' has {info.n_pairs} pairs; ask for the next item to get a valid id.")
        return row_pair(row)

    def _queue(self, conn: Connection, info: SessionInfo, aid: int, annotator: str, *,
               rank: bool = True) -> tuple[list[str], int, dict[str, int]]:
        """Pair ids still open to this annotator, best first (in dataset order when not ``rank``),
        how many they have done, and the per-pair vote counts (empty when no pair can be full, see below)."""
        ids, sources = self._dataset_pairs(conn, info.dataset)
        mine = {r[0] for r in conn.execute(
            "SELECT pair_id FROM labeling_current WHERE session_id = ? AND annotator_id = ?", (info.id, aid))}
        s = info.settings
        ranked = s.order in ("active", MODEL_UNCERTAIN)
        # A pair is full once ``overlap`` others judged or hold it. With no more annotators than
        # the overlap, none can be full for someone who has not judged it yet (at most n - 1
        # others vote on or hold it), so the per-pair count, a scan of all votes, is not needed.
        n_annotators = conn.execute("SELECT COUNT(*) FROM labeling_annotators WHERE session_id = ?", (info.id,)).fetchone()[0]
        counts: dict[str, int] = {}
        if (ranked and rank) or n_annotators > s.overlap:
            counts = dict(conn.execute(
                "SELECT pair_id, COUNT(*) FROM labeling_current WHERE session_id = ? AND outcome != 'skip' GROUP BY pair_id", (info.id,)))
        if s.order == "random" and rank:
            ids = self._random_rank(info.id, annotator, ids)
        open_ids = open_pairs(ids, mine, counts, s.overlap, s.gold)
        if ranked and rank:
            votes = conn.execute("SELECT pair_id, outcome FROM labeling_current WHERE session_id = ?", (info.id,)).fetchall()
            head = None
            if s.order == MODEL_UNCERTAIN:
                decisive = sum(o in ("A", "B") for _, o in votes)
                head = self.uncertain.observe(info.id, decisive, s.refit_every, lambda: self._fit_snapshot(info.name))
            if head is not None:
                open_ids = rank_uncertain(open_ids, counts, head.order, salt=f"{info.id}:{annotator}")
            else:
                open_ids = rank_active(open_ids, votes, sources, counts, salt=f"{info.id}:{annotator}",
                                       bt=self._source_ratings(info.id, votes, sources))
        return open_ids, len(mine), counts

    def _fit_snapshot(self, session: str) -> tuple[SessionSettings, list[Pair], list[Judgment]]:
        """The session's settings, pairs and current votes from one snapshot (read by the background refit)."""
        with self.store.snapshot() as conn:
            info = self._session(conn, session)
            version = self._dataset_version(conn, info.dataset)
            cached = self._fit_pairs.get(version[0])
            if cached is None or cached[0] != version:
                cached = self._fit_pairs[version[0]] = (version, [row_pair(r) for r in conn.execute(
                    f"SELECT {PAIR_COLUMNS} FROM pairs WHERE dataset_id = ? ORDER BY position", (version[0],))])
            return info.settings, cached[1], self._judgments(conn, info.id)

    def _repeat_plan(self, conn: Connection, info: SessionInfo, aid: int, annotator: str, left: int,
                     now: float | None) -> _RepeatPlan:
        """Whether this annotator's next item is a hidden repeat (and which), and how many are to come.

        A live lease on a pair they already voted on is a repeat served and not yet answered: it
        is served again (a reload shows the same pair). ``now`` None: only count, pick nothing.
        """
        mine = conn.execute("SELECT pair_id, outcome FROM labeling_current WHERE session_id = ? AND annotator_id = ?"
                            " ORDER BY event_id", (info.id, aid)).fetchall()
        repeated = [r[0] for r in conn.execute(
            "SELECT pair_id FROM labeling_events WHERE session_id = ? AND annotator_id = ? AND kind = 'vote' AND is_repeat = 1"
            " AND id NOT IN (SELECT target FROM labeling_events WHERE session_id = ? AND kind = 'undo' AND target IS NOT NULL)",
            (info.id, aid, info.id))]
        pick, remaining = repeat_pick(info.settings.repeat_share, mine, set(repeated), len(repeated), left,
                                      salt=f"{info.id}:{annotator}")
        if now is None:
            return _RepeatPlan(None, remaining, len(repeated))
        lease = conn.execute("SELECT pair_id, expires_at FROM labeling_leases WHERE session_id = ? AND annotator_id = ?",
                             (info.id, aid)).fetchone()
        voted = {pid for pid, _ in mine}
        if lease is not None and lease[1] > now and lease[0] in voted and lease[0] not in repeated:
            return _RepeatPlan(lease[0], max(remaining, 1), len(repeated))
        return _RepeatPlan(pick, remaining, len(repeated))

    def _random_rank(self, sid: int, annotator: str, ids: list[str]) -> list[str]:
        """The dataset's pair ids in this annotator's random order (stable; hashed once, then cached)."""
        cached = self._rank_cache.get((sid, annotator))
        if cached is None or cached[0] is not ids:
            ranked = random_rank(f"{sid}:{annotator}", ids)
            cached = self._rank_cache[(sid, annotator)] = (ids, ranked)
        return cached[1]

    def _source_ratings(self, sid: int, votes: list[tuple[str, str]], sources: dict[str, tuple[str, str]]) -> BTResult | None:
        """A point Bradley–Terry fit of the sources for active selection, refitted only when the
        number of source-labelled votes grew by 10% (at least 5), so picking stays fast."""
        records = [(*sources[pid], o) for pid, o in votes if pid in sources and o in ("A", "B", "tie")]
        cached = self._bt_cache.get(sid)
        if cached and len(records) - cached[0] < max(5, cached[0] // 10):
            return cached[1]
        comparisons = Comparisons.from_records(records)
        fit = fit_bradley_terry(comparisons, n_boot=0) if len(comparisons) and len(comparisons.items) >= 2 else None
        self._bt_cache[sid] = (len(records), fit)
        return fit

    # -- votes -----------------------------------------------------------------------------

    def vote(self, session: str, annotator: str, pair_id: str, outcome: str | Outcome, *, strength: int | None = None,
             aspects: dict[str, str] | None = None, rationale: str = "", displayed_order: str | None = None,
             started_at: float | None = None, request_id: str | None = None, edit: bool = False,
             imported: bool = False, soft: float | None = None) -> VoteAck:
        """Append a vote (``outcome`` in canonical A/B terms) and make it the annotator's current one.

        Voting again on a judged pair needs ``edit=True`` (else it is a double submit and is
        refused). A repeated ``request_id`` returns the first acknowledgement, marked ``replayed``.
        ``imported=True`` records ``displayed_order`` as given (votes of an external judge, whose
        order was the file's) instead of checking it against the order this store assigned.
        ``soft`` is a judge's probability that A is better (see ``check_soft``).
        """
        outcome = _outcome(outcome)
        soft = check_soft(soft, outcome, imported=imported)
        aspects = dict(aspects or {})
        _check_vote_fields(outcome, strength, rationale, started_at, request_id)
        payload = {"kind": "vote", "pair_id": pair_id, "outcome": outcome, "strength": strength, "aspects": aspects,
                   "rationale": rationale, "displayed_order": displayed_order, "edit": bool(edit)}
        if soft is not None:
            payload["soft"] = soft

        def work(conn: Connection) -> VoteAck:
            info = self._session(conn, session)
            aid = self._annotator_id(conn, info.id, session, annotator)
            replay = self._replay(conn, info.id, aid, request_id, payload)
            if replay:
                return replay
            if info.status != "open":
                raise Conflict(f"Session '{session}' is closed; it takes no more votes.", hint="Reopen it to continue labeling.")
            self._pair(conn, info, pair_id)
            current = self._current(conn, info.id, aid, pair_id)
            repeat = bool(current) and not edit and not imported and self._is_repeat(conn, info, aid, annotator, pair_id, displayed_order)
            if current and not edit and not repeat and info.settings.repeat_share > 0:
                # Said before the order check: a second copy of a repeat's vote is a double submit, not a wrong order.
                raise Conflict(f"'{annotator}' already voted on pair '{pair_id}'.", hint="To change that vote, send it again with edit=true.")
            assigned = repeat_order(info.id, annotator, pair_id) if repeat else assigned_order(info.id, annotator, pair_id)
            if imported and displayed_order in ("AB", "BA"):
                assigned = displayed_order
            elif displayed_order is not None and displayed_order != assigned:
                raise Invalid(f"displayed_order {displayed_order!r} is not what '{annotator}' was shown for this pair ('{assigned}').",
                              hint="Send back the displayed_order of the item you were given.")
            unknown = sorted(set(aspects) - set(info.settings.aspects))
            if unknown:
                raise Invalid(f"Unknown aspect(s): {', '.join(unknown)}.",
                              hint=f"This session judges: {', '.join(info.settings.aspects) or 'no aspects'}.")
            bad = {k: v for k, v in aspects.items() if v not in ASPECT_OUTCOMES}
            if bad:
                raise Invalid(f"Aspect '{next(iter(bad))}' has outcome {next(iter(bad.values()))!r}.", hint="Aspect outcomes are A, B or tie.")
            if current and not edit and not repeat:
                raise Conflict(f"'{annotator}' already voted on pair '{pair_id}' (event {current['event_id']}).",
                               hint="To change that vote, send it again with edit=true.")
            if edit and not current:
                raise Conflict(f"'{annotator}' has no vote on pair '{pair_id}' to edit.", hint="Send it without edit=true.")
            event_id = conn.insert(
                "INSERT INTO labeling_events (session_id, annotator_id, kind, pair_id, outcome, strength, aspects, rationale,"
                " displayed_order, started_at, submitted_at, request_id, payload_hash, soft, is_repeat)"
                " VALUES (?, ?, 'vote', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (info.id, aid, pair_id, outcome, strength, json.dumps(aspects, sort_keys=True), rationale, assigned,
                 started_at, time.time(), request_id, _payload_hash(payload), soft, 1 if repeat else 0),
            )
            if repeat:  # kept apart: their first vote still counts, once
                conn.execute("DELETE FROM labeling_leases WHERE session_id = ? AND annotator_id = ? AND pair_id = ?", (info.id, aid, pair_id))
                return VoteAck(event_id, pair_id, outcome)
            conn.execute("INSERT INTO labeling_current (session_id, annotator_id, pair_id, event_id, outcome) VALUES (?, ?, ?, ?, ?)"
                         " ON CONFLICT (session_id, annotator_id, pair_id) DO UPDATE SET event_id = excluded.event_id, outcome = excluded.outcome",
                         (info.id, aid, pair_id, event_id, outcome))
            # The same transaction turns the reservation into a vote: never neither, never both.
            conn.execute("DELETE FROM labeling_leases WHERE session_id = ? AND annotator_id = ? AND pair_id = ?", (info.id, aid, pair_id))
            return VoteAck(event_id, pair_id, outcome)

        return self.store.write_batched(work)

    def _is_repeat(self, conn: Connection, info: SessionInfo, aid: int, annotator: str, pair_id: str,
                   displayed_order: str | None) -> bool:
        """Whether a vote on a pair the annotator already voted on answers a hidden repeat: the
        session schedules repeats, they have no standing repeat vote on it, and they hold it (a
        served repeat) or send the swapped order only a repeat is shown in (its lease expired).
        A stale copy of the first vote (the first order) is a double submit, as before."""
        if info.settings.repeat_share <= 0 or displayed_order not in (None, repeat_order(info.id, annotator, pair_id)):
            return False
        held = conn.execute("SELECT 1 FROM labeling_leases WHERE session_id = ? AND annotator_id = ? AND pair_id = ?",
                            (info.id, aid, pair_id)).fetchone()
        if held is None and displayed_order is None:
            return False
        standing = conn.execute(
            "SELECT 1 FROM labeling_events WHERE session_id = ? AND annotator_id = ? AND pair_id = ? AND kind = 'vote' AND is_repeat = 1"
            " AND id NOT IN (SELECT target FROM labeling_events WHERE session_id = ? AND kind = 'undo' AND target IS NOT NULL)",
            (info.id, aid, pair_id, info.id)).fetchone()
        return standing is None

    def vote_choice(self, session: str, annotator: str, pair_id: str, choice: str, displayed_order: str, *,
                    aspects: dict[str, str] | None = None, **vote_options: Any) -> VoteAck:
        """A vote in the annotator's terms: ``choice`` and ``aspects`` name the displayed sides
        (left/right), translated here to A/B through the ``displayed_order`` they were shown."""
        if choice not in CHOICES:
            raise Invalid(f"Unknown choice {str(choice)[:40]!r}.", hint=f"Choices are: {', '.join(CHOICES)}.")
        if displayed_order not in ("AB", "BA"):
            raise Invalid(f"displayed_order must be 'AB' or 'BA', got {str(displayed_order)[:10]!r}.",
                          hint="Send back the item's displayed_order.")
        aspects = dict(aspects or {})
        bad = {k: v for k, v in aspects.items() if v not in ASPECT_CHOICES}
        if bad:
            raise Invalid(f"Aspect '{str(next(iter(bad)))[:40]}' has choice {str(next(iter(bad.values())))[:20]!r}.",
                          hint="Aspect choices are left, right or tie.")
        return self.vote(session, annotator, pair_id, to_canonical(choice, displayed_order),
                         aspects={k: to_canonical(v, displayed_order) for k, v in aspects.items()},
                         displayed_order=displayed_order, **vote_options)

    def undo(self, session: str, annotator: str, event_id: int | None = None, *, request_id: str | None = None) -> VoteAck:
        """Append an undo of ``event_id`` (default: the annotator's latest vote that still counts).

        The pair's previous vote by the same annotator, if any, counts again; otherwise the pair
        goes back into their queue. Returns the undo event, ``outcome`` being the vote undone.
        """
        payload = {"kind": "undo", "event_id": event_id}
        def work(conn: Connection) -> VoteAck:
            info = self._session(conn, session)
            aid = self._annotator_id(conn, info.id, session, annotator)
            replay = self._replay(conn, info.id, aid, request_id, payload)
            if replay:
                return replay
            if info.status != "open":
                raise Conflict(f"Session '{session}' is closed; its votes cannot be undone.", hint="Reopen it first.")
            # A hidden repeat's vote is undone like any other (the annotator does not know it was one).
            standing_repeat = ("SELECT id, pair_id, outcome FROM labeling_events WHERE session_id = ? AND annotator_id = ? AND kind = 'vote'"
                               " AND is_repeat = 1 AND id NOT IN (SELECT target FROM labeling_events WHERE session_id = ? AND kind = 'undo'"
                               " AND target IS NOT NULL)")
            if event_id is None:
                row = conn.execute("SELECT event_id, pair_id, outcome FROM labeling_current WHERE session_id = ? AND annotator_id = ?"
                                   " ORDER BY event_id DESC LIMIT 1", (info.id, aid)).fetchone()
                again = conn.execute(standing_repeat + " ORDER BY id DESC LIMIT 1", (info.id, aid, info.id)).fetchone()
                if again is not None and (row is None or again[0] > row[0]):
                    row = again
                if row is None:
                    raise Conflict(f"'{annotator}' has no vote to undo in session '{session}'.", hint="Vote first.")
            else:
                row = conn.execute("SELECT c.event_id, c.pair_id, c.outcome FROM labeling_current c WHERE c.session_id = ?"
                                   " AND c.annotator_id = ? AND c.event_id = ?", (info.id, aid, event_id)).fetchone()
                row = row or conn.execute(standing_repeat + " AND id = ?", (info.id, aid, info.id, event_id)).fetchone()
                if row is None:
                    raise Conflict(f"Event {event_id} is not a vote of '{annotator}' that currently counts.",
                                   hint="Only your own latest vote on a pair can be undone; see the history.")
            target, pair_id, undone = row
            is_repeat = conn.execute("SELECT is_repeat FROM labeling_events WHERE id = ?", (target,)).fetchone()[0] == 1
            undo_id = conn.insert(
                "INSERT INTO labeling_events (session_id, annotator_id, kind, pair_id, target, submitted_at, request_id, payload_hash)"
                " VALUES (?, ?, 'undo', ?, ?, ?, ?, ?)",
                (info.id, aid, pair_id, target, time.time(), request_id, _payload_hash(payload)),
            )
            if is_repeat:  # their first vote stands; the pair is theirs to see again first, as the same repeat
                hold(conn, info.id, aid, pair_id, info.settings.lease_seconds, self.clock())
                return VoteAck(undo_id, pair_id, undone)
            previous = conn.execute(
                "SELECT id, outcome FROM labeling_events WHERE session_id = ? AND annotator_id = ? AND pair_id = ? AND kind = 'vote'"
                " AND is_repeat = 0 AND id < ? AND id NOT IN (SELECT target FROM labeling_events WHERE session_id = ? AND kind = 'undo')"
                " ORDER BY id DESC LIMIT 1", (info.id, aid, pair_id, target, info.id)).fetchone()
            if previous:
                conn.execute("UPDATE labeling_current SET event_id = ?, outcome = ? WHERE session_id = ? AND annotator_id = ? AND pair_id = ?",
                             (previous[0], previous[1], info.id, aid, pair_id))
            else:
                conn.execute("DELETE FROM labeling_current WHERE session_id = ? AND annotator_id = ? AND pair_id = ?", (info.id, aid, pair_id))
            # The undone pair is theirs to judge again first, not the one they were served.
            conn.execute("DELETE FROM labeling_leases WHERE session_id = ? AND annotator_id = ?", (info.id, aid))
            return VoteAck(undo_id, pair_id, undone)

        return self.store.write_batched(work)

    def _replay(self, conn: Connection, sid: int, aid: int, request_id: str | None, payload: dict[str, Any]) -> VoteAck | None:
        if request_id is None:
            return None
        row = conn.execute("SELECT id, pair_id, kind, outcome, target, payload_hash FROM labeling_events"
                           " WHERE session_id = ? AND annotator_id = ? AND request_id = ?", (sid, aid, request_id)).fetchone()
        if row is None:
            return None
        if row[5] != _payload_hash(payload):
            raise Conflict(f"request_id '{request_id}' was already used for a different request (event {row[0]}).",
                           hint="Use a fresh request_id for every new vote; reuse one only to retry the same request.")
        outcome = row[3]
        if row[2] == "undo":
            outcome = conn.execute("SELECT outcome FROM labeling_events WHERE id = ?", (row[4],)).fetchone()[0]
        return VoteAck(row[0], row[1], outcome, replayed=True)

    def _current(self, conn: Connection, sid: int, aid: int, pair_id: str) -> dict[str, Any] | None:
        row = conn.execute(
            "SELECT e.id, e.outcome, e.strength, e.aspects, e.rationale FROM labeling_current c JOIN labeling_events e ON e.id = c.event_id"
            " WHERE c.session_id = ? AND c.annotator_id = ? AND c.pair_id = ?", (sid, aid, pair_id)).fetchone()
        if row is None:
            return None
        return {"event_id": row[0], "outcome": row[1], "strength": row[2], "aspects": json.loads(row[3]), "rationale": row[4]}

    def import_judged_session(self, name: str, dataset: str, pairs: list[Pair],
                              votes: list[tuple[str, str, str, float | None]], *, source: str = "",
                              format: str = "", displayed_order: str = "AB") -> SessionInfo:
        """A new dataset, a session over it, its judges and their votes (pair id, judge, outcome,
        soft), all in one transaction: an external judge's file either arrives whole or not at all.

        One commit instead of one per vote is what makes 20 files of 805 judgments import in
        seconds; every vote is checked as ``vote`` checks an imported one.
        """
        name = _name(name, "Session name")
        judges = sorted({judge for _, judge, _, _ in votes})
        for judge in judges:
            _name(judge, "Annotator name")
        rows = []
        for pid, judge, outcome, soft in votes:
            outcome = _outcome(outcome)
            rows.append((pid, judge, outcome, check_soft(soft, outcome, imported=True)))
        ids = {p.id for p in pairs}
        missing = next((pid for pid, *_ in rows if pid not in ids), None)
        if missing is not None:
            raise NotFound(f"A vote names pair '{missing}', which is not among the {len(ids)} pairs imported.",
                           hint="Give every voted pair in pairs.")
        settings = SessionSettings(overlap=max(1, len(judges)))
        now = time.time()
        with self.store.transaction() as conn:
            if conn.execute("SELECT 1 FROM labeling_sessions WHERE name = ?", (name,)).fetchone():
                raise Conflict(f"A labeling session named '{name}' already exists.", hint="Import under another session name.")
            self.store.insert_pairs(conn, dataset, pairs, source=source, format=format)
            sid = conn.insert("INSERT INTO labeling_sessions (name, dataset, settings, created_at) VALUES (?, ?, ?, ?)",
                              (name, dataset.strip(), json.dumps(asdict(settings)), now))
            aids = {}
            for judge in judges:
                aids[judge] = conn.insert("INSERT INTO labeling_annotators (session_id, name, token, created_at) VALUES (?, ?, ?, ?)",
                                          (sid, judge, secrets.token_urlsafe(24), now))
            for pid, judge, outcome, soft in rows:
                payload = {"kind": "vote", "pair_id": pid, "outcome": outcome, "strength": None, "aspects": {}, "rationale": "",
                           "displayed_order": displayed_order, "edit": False, **({"soft": soft} if soft is not None else {})}
                event_id = conn.insert(
                    "INSERT INTO labeling_events (session_id, annotator_id, kind, pair_id, outcome, displayed_order, submitted_at,"
                    " payload_hash, soft) VALUES (?, ?, 'vote', ?, ?, ?, ?, ?, ?)",
                    (sid, aids[judge], pid, outcome, displayed_order, now, _payload_hash(payload), soft))
                inserted = conn.execute("INSERT INTO labeling_current (session_id, annotator_id, pair_id, event_id, outcome)"
                                        " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING event_id",
                                        (sid, aids[judge], pid, event_id, outcome)).fetchone()
                if inserted is None:
                    raise Conflict(f"'{judge}' votes twice on pair '{pid}'.", hint="Keep one vote per judge and pair.") from None
        return self.session(name)

    # -- reading back ----------------------------------------------------------------------

    def history(self, session: str, annotator: str) -> list[dict[str, Any]]:
        """The annotator's votes that currently count, oldest first (for the history panel)."""
        with self.store.snapshot() as conn:
            info = self._session(conn, session)
            aid = self._annotator_id(conn, info.id, session, annotator)
            rows = conn.execute(
                "SELECT e.id, e.pair_id, e.outcome, e.strength, e.aspects, e.rationale, e.displayed_order, e.started_at, e.submitted_at"
                " FROM labeling_current c JOIN labeling_events e ON e.id = c.event_id"
                " WHERE c.session_id = ? AND c.annotator_id = ? ORDER BY e.id", (info.id, aid)).fetchall()
        cols = ("event_id", "pair_id", "outcome", "strength", "aspects", "rationale", "displayed_order", "started_at", "submitted_at")
        out = [dict(zip(cols, r, strict=True)) for r in rows]
        for r in out:
            r["aspects"] = json.loads(r["aspects"])
        return out

    def judgments(self, session: str) -> list[Judgment]:
        """Every vote that currently counts, all annotators, in submission order (hidden repeats are not among them)."""
        with self.store.snapshot() as conn:
            return self._judgments(conn, self._session(conn, session).id)

    def _judgments(self, conn: Connection, sid: int) -> list[Judgment]:
        rows = conn.execute(
            "SELECT e.pair_id, a.name, e.outcome, e.strength, e.aspects, e.rationale, e.displayed_order, e.started_at, e.submitted_at,"
            " e.soft FROM labeling_current c JOIN labeling_events e ON e.id = c.event_id JOIN labeling_annotators a ON a.id = c.annotator_id"
            " WHERE c.session_id = ? ORDER BY e.id", (sid,)).fetchall()
        return [_judgment(r) for r in rows]

    def repeats(self, session: str) -> list[Judgment]:
        """The hidden repeats' votes that stand (not undone), in submission order: each is an
        annotator's second vote on a pair, for ``annotator_analysis(..., repeats=...)``'s
        self-consistency. They never count in ``judgments``, win rates or Bradley–Terry."""
        with self.store.snapshot() as conn:
            info = self._session(conn, session)
            rows = conn.execute(
                "SELECT e.pair_id, a.name, e.outcome, e.strength, e.aspects, e.rationale, e.displayed_order, e.started_at,"
                " e.submitted_at, e.soft FROM labeling_events e JOIN labeling_annotators a ON a.id = e.annotator_id"
                " WHERE e.session_id = ? AND e.kind = 'vote' AND e.is_repeat = 1 AND e.id NOT IN"
                " (SELECT target FROM labeling_events WHERE session_id = ? AND kind = 'undo' AND target IS NOT NULL)"
                " ORDER BY e.id", (info.id, info.id)).fetchall()
        return [_judgment(r) for r in rows]

    def events(self, session: str) -> list[dict[str, Any]]:
        """The raw append-only log (votes and undos; ``is_repeat`` marks a hidden repeat's vote), for audits and tests."""
        with self.store.snapshot() as conn:
            info = self._session(conn, session)
            cur = conn.execute(
                "SELECT e.id, a.name AS annotator, e.kind, e.pair_id, e.target, e.outcome, e.strength, e.soft, e.displayed_order,"
                " e.request_id, e.submitted_at, e.is_repeat FROM labeling_events e JOIN labeling_annotators a ON a.id = e.annotator_id"
                " WHERE e.session_id = ? ORDER BY e.id", (info.id,))
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, r, strict=True)) for r in cur]

    def progress(self, session: str, annotator: str) -> Progress:
        """n of N for the annotator, with an ETA from their median time per item."""
        with self.store.snapshot() as conn:
            info = self._session(conn, session)
            aid = self._annotator_id(conn, info.id, session, annotator)
            queue, done, _ = self._queue(conn, info, aid, annotator, rank=False)
            plan = self._repeat_plan(conn, info, aid, annotator, len(queue), None) if info.settings.repeat_share > 0 else None
            spans = [r[0] for r in conn.execute(
                "SELECT e.submitted_at - e.started_at FROM labeling_current c JOIN labeling_events e ON e.id = c.event_id"
                " WHERE c.session_id = ? AND c.annotator_id = ? AND e.started_at IS NOT NULL ORDER BY e.id DESC LIMIT 50", (info.id, aid))]
        spans = [s for s in spans if s is not None and s >= 0]
        per_item = statistics.median(spans) if spans else None
        left = len(queue)
        if plan is not None:  # repeats are items like any other: the annotator is not told which
            done, left = done + plan.n_repeats, left + plan.remaining
        return Progress(done, done + left, per_item, per_item * left if per_item is not None else None)

    def session_progress(self, session: str) -> dict[str, Any]:
        """How far the whole session is: votes that count toward overlap, against what it needs.

        With hidden repeats, ``repeats`` counts their standing votes (not among the judgments);
        a ``model-uncertain`` session adds ``selection`` (``selection_status``): what its order
        rests on now, said plainly before the first head exists."""
        with self.store.snapshot() as conn:
            info = self._session(conn, session)
            rows = conn.execute("SELECT SUM(CASE WHEN outcome != 'skip' THEN 1 ELSE 0 END), SUM(CASE WHEN outcome = 'skip' THEN 1 ELSE 0 END)"
                                " FROM labeling_current"
                                " WHERE session_id = ? GROUP BY pair_id", (info.id,)).fetchall()
            n_repeats = conn.execute(
                "SELECT COUNT(*) FROM labeling_events WHERE session_id = ? AND kind = 'vote' AND is_repeat = 1 AND id NOT IN"
                " (SELECT target FROM labeling_events WHERE session_id = ? AND kind = 'undo' AND target IS NOT NULL)",
                (info.id, info.id)).fetchone()[0] if info.settings.repeat_share > 0 else 0
            decisive = conn.execute("SELECT COUNT(*) FROM labeling_current WHERE session_id = ? AND outcome IN ('A', 'B')",
                                    (info.id,)).fetchone()[0] if info.settings.order == MODEL_UNCERTAIN else 0
        need = info.n_pairs * info.settings.overlap
        skips = sum(r[1] for r in rows)
        # "judgments" counts every current vote, skips included, as the per-annotator table does.
        out: dict[str, Any] = {"pairs": info.n_pairs, "needed": need, "covered": sum(min(r[0], info.settings.overlap) for r in rows),
                               "judgments": sum(r[0] for r in rows) + skips, "skips": skips}
        if info.settings.repeat_share > 0:
            out["repeats"] = n_repeats
        if info.settings.order == MODEL_UNCERTAIN:
            out["selection"] = self.uncertain.status(info.id, decisive, info.settings.refit_every)
        return out

    def selection_status(self, session: str) -> dict[str, Any] | None:
        """For a ``model-uncertain`` session: the head its order uses now (votes it rests on, its
        version, whether a refit runs, taste groups) and a ``note`` in words; None for other orders."""
        progress = self.session_progress(session)
        return progress.get("selection")


def _judgment(r: tuple[Any, ...]) -> Judgment:
    return Judgment(pair_id=r[0], annotator=r[1], outcome=Outcome(r[2]), strength=r[3], aspects=json.loads(r[4]),
                    rationale=r[5], displayed_order=r[6], started_at=r[7], submitted_at=r[8], soft=r[9])


def _check_vote_fields(outcome: str, strength: Any, rationale: Any, started_at: Any, request_id: Any) -> None:
    """Refuse a vote's fields before the store is touched, each in the API's words."""
    if outcome == "skip" and not (isinstance(rationale, str) and rationale.strip()):
        raise Invalid("A skip needs a reason.", hint="Say why in the rationale, e.g. 'not my language'.")
    if strength is not None and (isinstance(strength, bool) or strength not in (1, 2)):
        raise Invalid(f"strength must be 1 (slight) or 2 (clear), got {strength!r}.", hint="Leave it empty for no strength.")
    if strength is not None and outcome not in ("A", "B"):
        raise Invalid(f"A strength only goes with an A or B vote, not with '{outcome}'.", hint="Leave strength empty.")
    if not isinstance(rationale, str) or len(rationale) > RATIONALE_MAX:
        raise Invalid(f"rationale must be text of at most {RATIONALE_MAX} characters.", hint="Shorten the rationale.")
    if started_at is not None and (not isinstance(started_at, int | float) or not math.isfinite(started_at)):
        raise Invalid(f"started_at must be Unix seconds, got {started_at!r}.", hint="Send time.time() of when the pair was shown.")
    if request_id is not None and (not isinstance(request_id, str) or not 0 < len(request_id) <= NAME_MAX):
        raise Invalid("request_id must be a non-empty text of at most 100 characters.", hint="Use a fresh UUID per vote.")



def check_soft(soft: Any, outcome: str, *, imported: bool = False) -> float | None:
    """A judge's probability that A is better, checked: a number in [0, 1] that goes with an
    A, B or tie outcome, and, unless the vote is imported (the file's own rounding), with the
    side it leans to (above ½: A, below: B, ½: tie), so the soft and the discrete figures
    describe the same vote."""
    if soft is None:
        return None
    if isinstance(soft, bool) or not isinstance(soft, int | float) or not math.isfinite(soft) or not 0 <= soft <= 1:
        raise Invalid(f"soft must be a probability between 0 and 1, got {str(soft)[:40]!r}.",
                      hint="Give the judge's probability that A is better, e.g. 0.73, or leave it out.")
    if outcome not in ASPECT_OUTCOMES:
        raise Invalid(f"A soft vote goes with an A, B or tie outcome, not with '{outcome}'.", hint="Leave soft out.")
    if not imported and outcome != ("A" if soft > 0.5 else "B" if soft < 0.5 else "tie"):
        raise Invalid(f"soft {soft} leans the other way from outcome '{outcome}'.",
                      hint="Send the side the probability leans to: above 0.5 is A, below is B, 0.5 is a tie.")
    return float(soft)


def _outcome(value: Any) -> str:
    try:
        return Outcome(value).value
    except ValueError:
        raise Invalid(f"Unknown outcome {str(value)[:40]!r}.", hint=f"Outcomes are: {', '.join(o.value for o in Outcome)}.") from None
