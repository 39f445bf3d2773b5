"""The invariants, checked once a second while faults happen (I1, I2, I5) and at the end (I3, I4).

I1  within GRACE_S of the last event touching a tenant, and with at least one able replica: exactly one
    process has its runtime 'active', that process is able (running, not frozen, reaching Telegram), and
    Telegram shows it served (webhook mode: the webhook URL is an able replica's; polling mode: no webhook
    and that process is calling getUpdates). A disabled or removed tenant is active nowhere.
I2  never two processes polling one bot (a getUpdates from one while the other's is waiting), nor two
    fighting over its webhook (it flips to the other and back, each within a second; a single fast
    hand-over is the fair share at work, and two processes both active for a tenant are I1's).
I3  every user message gets exactly one reply (late replies count until the end of the quiet period).
I4  every generation ends with exactly one outcome message, and the money reconciles: no negative
    balance, nothing held, no pending hold, every job final, `Ledger.reconcile()` empty, balances equal
    credits minus debits minus commits, one commit per delivered job.
I5  no background loop dead: every running, unfrozen replica answers /health and /status.json (with
    its database queries working), its instance heartbeat is fresh, it picks up tenant changes (the
    listener), and a tenant it serves progresses (no update waits at Telegram for longer than STALL_S).
    The lock loop is judged by I1: a dead one leaves tenants unserved or never handed over.

A violation is an episode: it opens when a check first fails outside its grace and closes when the check
holds again, so one broken tenant counts once however long it stays broken.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from bench.chaos.cluster import Cluster, Replica, Tenant
from bench.chaos.observe import ReplicaView, TelegramWatch
from bench.chaos.traffic import Traffic

GRACE_S = 10.0
STALL_S = 15.0
INSTANCE_HEARTBEAT_S = 25.0
MERGE_CONFLICTS_S = 5.0
WATCH_STEP_S = 3.0
UNANSWERED_CHECKS = 3
"""A replica that misses this many checks in a row (1.5 s timeout each) does not answer: one miss on a
starved machine is noise."""
INVARIANTS = ("I1", "I2", "I3", "I4", "I5")


@dataclass
class Step:
    """One thing the driver did (an event, or its undo step), as printed in the event log."""

    at: float
    kind: str
    target: str
    action: str
    detail: str = ""
    touched: frozenset[str] | None = frozenset()
    """Tenants whose ownership this may move (None: all of them); they get GRACE_S to settle."""
    error: str | None = None
    reconverged_s: float | None = None

    @property
    def measured(self) -> bool:
        return self.error is None and (self.touched is None or bool(self.touched))

    def line(self) -> str:
        what = f"{self.kind} {self.target}: {self.action}" + (f" ({self.detail})" if self.detail else "")
        if self.error:
            what += f" ERROR {self.error}"
        elif self.measured:
            what += f"  [reconverged in {self.reconverged_s:.1f}s]" if self.reconverged_s is not None else "  [never]"
        return f"{self.at:7.1f}s  {what}"


@dataclass
class Episode:
    invariant: str
    subject: str
    start: float
    detail: str
    end: float | None = None
    hits: int = 1
    last_hit: float = 0.0
    after: str = ""
    """The last event step that touched the subject before the violation began."""

    def line(self) -> str:
        until = f"{self.end:.1f}s" if self.end is not None else "the end"
        span = f"at {self.start:.1f}s" if self.end == self.start else f"{self.start:.1f}s → {until}"
        hits = f" ×{self.hits}" if self.hits > 1 else ""
        after = f"; last event: {self.after}" if self.after else ""
        return f"{self.invariant} {self.subject}: {self.detail} ({span}{hits}{after})"


@dataclass
class Monitor:
    cluster: Cluster
    watch: TelegramWatch
    steps: list[Step] = field(default_factory=list)
    episodes: list[Episode] = field(default_factory=list)
    views: dict[str, ReplicaView] = field(default_factory=dict)
    problems: dict[str, str | None] = field(default_factory=dict)
    busy: set[str] = field(default_factory=set)
    """Tenants a command is being applied to right now."""
    ticks: int = 0
    _open: dict[tuple[str, str], Episode] = field(default_factory=dict)
    _touched_at: dict[str, float] = field(default_factory=dict)
    _touched_by: dict[str, str] = field(default_factory=dict)
    _replica_touched_at: dict[str, float] = field(default_factory=dict)
    _pending_since: dict[str, float] = field(default_factory=dict)
    _names: dict[str, tuple[str, float]] = field(default_factory=dict)
    _silent: dict[str, int] = field(default_factory=dict)
    _last_answer: dict[str, tuple[int, int, ReplicaView]] = field(default_factory=dict)
    """Replica -> (check number, incarnation, view) of its last answer to /status.json."""
    _back_at: dict[int, float] = field(default_factory=dict)
    """Step index -> since when every tenant it touched has been served (while WATCH_STEP_S runs)."""

    # --- what the driver tells the monitor ---------------------------------------------------------

    def record(self, step: Step, *, replica: str | None = None) -> Step:
        self.steps.append(step)
        slugs = self.cluster.tenants if step.touched is None else step.touched
        for slug in slugs:
            self._touched_at[slug] = step.at
            self._touched_by[slug] = f"{step.at:.1f}s {step.kind} {step.target} {step.action}"
        if replica is not None:
            self._replica_touched_at[replica] = step.at
            self._touched_by[replica] = f"{step.at:.1f}s {step.kind} {step.target} {step.action}"
        return step

    def touch(self, slug: str, at: float) -> None:
        """A command on this tenant has just finished: its grace starts again."""
        self._touched_at[slug] = max(self._touched_at.get(slug, at), at)

    def expect_name(self, slug: str, name: str, at: float) -> None:
        """Every replica must show this display name within GRACE_S (the listener is alive)."""
        self._names[slug] = (name, at)

    def active_on(self, replica: str) -> frozenset[str]:
        view = self.views.get(replica)
        return frozenset(view.active()) if view is not None else frozenset()

    # --- the checks ---------------------------------------------------------------------------------

    def evaluate(self, views: dict[str, ReplicaView]) -> dict[str, str | None]:
        """Each tenant's I1 problem on fresh views (None: served as it should be), recording nothing."""
        self.views = views
        self.problems = {slug: self._serving(tenant) for slug, tenant in self.cluster.tenants.items()}
        return self.problems

    def check(self, now: float, views: dict[str, ReplicaView]) -> None:
        """Run I1, I2, I5 on fresh views and open or close violation episodes."""
        problems = self.evaluate(self.carry_last_answers(views))
        self.views = views  # I5 judges what answered now
        self.ticks += 1
        failing: dict[tuple[str, str], str] = {}
        if any(r.able and views.get(r.name, ReplicaView(None, None)).status for r in self._replicas()):
            failing |= {("I1", slug): problem for slug, problem in problems.items() if problem is not None}
        else:  # no able replica to ask: I1 is not judged now, and what is open stays open
            failing |= {key: e.detail for key, e in self._open.items() if key[0] == "I1"}
        for key, detail in self._loops(now, problems).items():
            failing[key] = detail
        self._update(now, failing)
        self._conflicts()
        self._reconverge(now, problems)

    def carry_last_answers(self, views: dict[str, ReplicaView]) -> dict[str, ReplicaView]:
        """A running replica that missed this check (1.5 s timeouts on a starved machine) is judged on its
        last answer for up to UNANSWERED_CHECKS checks: its silence says nothing about which tenants it
        serves (I1 would read it as "active nowhere"); a replica silent for longer is I5's to report."""
        judged = dict(views)
        for name, view in views.items():
            incarnation = self.cluster.replicas[name].incarnation
            if view.status is not None:
                self._last_answer[name] = (self.ticks, incarnation, view)
                continue
            last = self._last_answer.get(name)
            if last is not None and last[1] == incarnation and self.ticks - last[0] < UNANSWERED_CHECKS:
                judged[name] = last[2]
        return judged

    def _replicas(self) -> list[Replica]:
        return list(self.cluster.replicas.values())

    def _graced(self, key: tuple[str, str], now: float) -> bool:
        """Not judged yet: a tenant (I1) or replica (I5) touched by an event less than GRACE_S ago."""
        invariant, subject = key
        if invariant == "I1":
            # A booting replica joins the fair share when it is ready, which on a starved machine can be
            # long after its spawn: every tenant may move until GRACE_S after it answers (`restarted`).
            booting = any(r.booting for r in self._replicas())
            return booting or subject in self.busy or now - self._touched_at.get(subject, -1e9) < GRACE_S
        return now - self._replica_touched_at.get(subject.split("/")[0], -1e9) < GRACE_S

    def _serving(self, tenant: Tenant) -> str | None:
        """I1 for one tenant: None when exactly one able process serves it (or nobody, if it is off)."""
        slug = tenant.slug
        actives = sorted(name for name, view in self.views.items() if slug in view.active())
        if tenant.status == "unknown":
            return None
        if tenant.status != "enabled":
            return f"{tenant.status}, yet active in {', '.join(actives)}" if actives else None
        if not actives:
            states = {name: view.state(slug) for name, view in self.views.items() if view.status is not None}
            return f"active in no process (states {states})"
        if len(actives) > 1:
            return f"active in {len(actives)} processes: {', '.join(actives)}"
        replica = self.cluster.replicas[actives[0]]
        if not replica.able:
            return f"active only in {replica.name}, which {_why_not_able(replica)}"
        telegram = self.cluster.stack.telegram
        url = telegram.webhook_info(tenant.token).url
        if tenant.mode == "webhook":
            target = self.cluster.replica_of_url(url, slug)
            if target is None:
                return f"webhook mode, active in {replica.name}, but the webhook is {url or 'not set'}"
            if not target.able:
                return f"webhook points at {target.name}, which {_why_not_able(target)}"
            return None
        if url:
            return f"polling mode, active in {replica.name}, but a webhook is set ({url})"
        if not self.watch.polled_recently(tenant.bot_id, replica.name):
            return f"polling mode, active in {replica.name}, which is not calling getUpdates"
        return None

    def _loops(self, now: float, problems: dict[str, str | None]) -> dict[tuple[str, str], str]:
        """I5 for every running, unfrozen replica."""
        failing: dict[tuple[str, str], str] = {}
        instances = self._instances()
        wall = time.time()
        for replica in self._replicas():
            if not replica.running or replica.frozen or replica.booting:
                continue
            view = self.views.get(replica.name)
            status = view.status if view is not None and view.health is not None else None
            self._silent[replica.name] = 0 if status is not None else self._silent.get(replica.name, 0) + 1
            if view is None or status is None:
                if self._silent[replica.name] >= UNANSWERED_CHECKS:
                    what = "/health" if view is None or view.health is None else "/status.json"
                    failing[("I5", replica.name)] = (
                        f"{what} did not answer {self._silent[replica.name]} checks in a row"
                    )
                continue
            if status.get("db_error"):
                failing[("I5", replica.name)] = f"/status.json: database query failed ({status['db_error']})"
            beat = max((at for name, at in instances.items() if replica.owns(name)), default=None)
            if beat is not None and wall - beat > INSTANCE_HEARTBEAT_S:
                failing[("I5", f"{replica.name}/instance")] = f"instance heartbeat {wall - beat:.0f}s old"
            for slug, row in view.tenants().items():
                name = self._names.get(slug)
                changing = slug in self.busy  # a rename in flight: either name is right until it returns
                if (
                    name is not None
                    and not changing
                    and now - name[1] >= GRACE_S
                    and row.get("display_name") != name[0]
                ):
                    failing[("I5", f"{replica.name}/listener")] = (
                        f"still shows {slug} as {row.get('display_name')!r}, {now - name[1]:.0f}s after it became "
                        f"{name[0]!r}"
                    )
            failing.update(self._stalls(now, replica, view, problems))
        return failing

    def _stalls(
        self, now: float, replica: Replica, view: ReplicaView, problems: dict[str, str | None]
    ) -> dict[tuple[str, str], str]:
        """A tenant this replica serves (I1 fine) whose updates wait at Telegram for longer than STALL_S:
        its webhook handling or polling loop does not progress."""
        failing: dict[tuple[str, str], str] = {}
        telegram = self.cluster.stack.telegram
        for slug in view.active():
            tenant = self.cluster.tenants.get(slug)
            if tenant is None or tenant.status != "enabled" or problems.get(slug) is not None:
                continue
            pending = telegram.webhook_info(tenant.token).pending_update_count
            if not pending:
                self._pending_since.pop(slug, None)
                continue
            since = self._pending_since.setdefault(slug, now)
            if now - since > STALL_S and now - self._touched_at.get(slug, -1e9) > STALL_S:
                failing[("I5", f"{replica.name}/{slug}")] = (
                    f"serves {slug}, but {pending} updates have waited at Telegram for {now - since:.0f}s"
                )
        return failing

    def _instances(self) -> dict[str, float]:
        found: dict[str, float] = {}
        for view in self.views.values():
            for row in (view.status or {}).get("instances") or []:
                if isinstance(row, dict) and "name" in row:
                    found[str(row["name"])] = float(row.get("heartbeat_at") or 0)
        return found

    def _update(self, now: float, failing: dict[tuple[str, str], str]) -> None:
        """Open an episode for each new failure outside its grace; close those that hold again."""
        for key, detail in failing.items():
            if key in self._open or self._graced(key, now):
                continue
            after = self._touched_by.get(key[1].split("/")[-1]) or self._touched_by.get(key[1].split("/")[0], "")
            episode = Episode(key[0], key[1], now, detail, after=after)
            self._open[key] = episode
            self.episodes.append(episode)
        for key in [k for k in self._open if k not in failing]:
            self._open.pop(key).end = now

    def _conflicts(self) -> None:
        by_bot = {t.bot_id: t.slug for t in self.cluster.tenants.values()}
        for conflict in self.watch.take_conflicts():
            slug = by_bot.get(conflict.bot_id, str(conflict.bot_id))
            last = next(
                (
                    e
                    for e in reversed(self.episodes)
                    if e.invariant == "I2" and e.subject == slug and e.detail.startswith(conflict.kind)
                ),
                None,
            )
            if last is not None and conflict.at - last.last_hit < MERGE_CONFLICTS_S:
                last.hits += 1
                last.last_hit = last.end = conflict.at
                continue
            detail = f"{conflict.kind}: {conflict.detail}"
            after = self._touched_by.get(slug, "") if conflict.at >= 0 else "the replicas' first boot"
            self.episodes.append(Episode("I2", slug, conflict.at, detail, conflict.at, 1, conflict.at, after))

    def _reconverge(self, now: float, problems: dict[str, str | None]) -> None:
        """A step has reconverged once each tenant it touched is served again. Not waited for: a tenant
        broken before the step (by something else), or touched again by a later step (that one answers
        for it). A tenant that breaks only a moment after the step (a restart follows a mode change by a
        few hundred ms) is waited for again, so a step is settled only after WATCH_STEP_S; its time is
        when the last of its tenants came back."""
        broken_since = {e.subject: e.start for e in self._open.values() if e.invariant == "I1"}
        for index, step in enumerate(self.steps):
            if not step.measured or step.reconverged_s is not None:
                continue
            touched = set(problems) if step.touched is None else set(step.touched) & set(problems)
            broken = {
                s
                for s in touched
                if problems[s] is not None
                and broken_since.get(s, now) >= step.at
                and self._touched_at.get(s, step.at) <= step.at
            }
            if broken:
                self._back_at.pop(index, None)
                continue
            back = self._back_at.setdefault(index, now)
            if now - step.at >= WATCH_STEP_S:
                step.reconverged_s = max(0.0, back - step.at)
                del self._back_at[index]

    def close(self, now: float) -> None:
        """End of run: episodes still open stay open (end None) and are reported as lasting to the end."""
        self._open.clear()

    # --- summaries ----------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        found = dict.fromkeys(INVARIANTS, 0)
        for episode in self.episodes:
            found[episode.invariant] += 1
        return found


def _why_not_able(replica: Replica) -> str:
    if not replica.running:
        return "is not running"
    if replica.frozen:
        return "is frozen (SIGSTOP)"
    return f"cannot reach Telegram (link {replica.link.state})"


# --- end of run: replies, outcomes, money ----------------------------------------------------------


@dataclass
class Tally:
    sent: int = 0
    answered: int = 0
    duplicates: int = 0
    lost: int = 0
    excused: int = 0
    known_window: int = 0
    """Duplicates of messages or outcomes sent while the replica serving their tenant was killed (`kill
    -9`) or cut off from Telegram: the at-least-once window the README states (the message reached
    Telegram, and the answer or the record that it was sent did not). Reported, not counted as
    violations; every other duplicate is."""
    problems: list[str] = field(default_factory=list)


KNOWN_WINDOW_BEFORE_S = 10.0  # a reply in flight at the fault began at most a call timeout (8 s) earlier
KNOWN_WINDOW_AFTER_S = 2.0
_CUTS = ("cut (blackhole)", "cut (refuse)")


def known_windows(steps: list[Step]) -> dict[str, list[tuple[float, float]]]:
    """Per tenant: the spans during which its serving replica was killed or cut off. A cut aborts the
    replica's connections to Telegram, so a request already forwarded is handled and its answer lost
    (chaos seed 1313: an outcome message in flight at a "refuse" cut was sent again); a refused link
    lets nothing through after that, so its window is the moment of the cut, a blackhole's lasts until
    the link is restored."""
    windows: dict[str, list[tuple[float, float]]] = {}
    for i, step in enumerate(steps):
        if step.error is not None or not step.touched or step.action not in ("SIGKILL", *_CUTS):
            continue
        end = step.at
        if step.action == "cut (blackhole)":
            end = next((s.at for s in steps[i + 1 :] if s.target == step.target and s.action == "restored"), step.at)
        for slug in step.touched:
            windows.setdefault(slug, []).append((step.at - KNOWN_WINDOW_BEFORE_S, end + KNOWN_WINDOW_AFTER_S))
    return windows


def tally(
    traffic: Traffic, kinds: tuple[str, ...], windows: dict[str, list[tuple[float, float]]] | None = None
) -> Tally:
    """Per user and kind: replies in the transcript against messages sent (I3), or outcomes against
    Generate presses (I4)."""
    result = Tally()
    windows = windows or {}
    for user in traffic.users:
        counts = user.counts(traffic.cluster)
        for kind in kinds:
            sent = [s for s in user.sent if s.kind == kind]
            if not sent:
                continue
            excused = sum(1 for s in sent if s.excused)
            got = counts.get(kind, 0)
            lost = max(0, len(sent) - excused - got)
            duplicates = max(0, got - len(sent))
            spans = windows.get(user.tenant.slug, [])
            at_risk = sum(1 for s in sent if any(a <= s.at <= b for a, b in spans))
            known = min(duplicates, at_risk)
            duplicates -= known
            result.known_window += known
            result.sent += len(sent)
            result.answered += min(got, len(sent))
            result.excused += excused
            result.lost += lost
            result.duplicates += duplicates
            if lost or duplicates:
                result.problems.append(
                    f"{user.tenant.slug} user {user.user_id}: {len(sent)} {kind} sent, {got} answered"
                    + (f", {excused} excused by a removal" if excused else "")
                )
    return result


CREDIT_KINDS = ("topup", "admin_credit", "bonus_welcome", "bonus_referral", "refund_reverted")
DEBIT_KINDS = ("admin_debit", "refund")


async def ledger_checks(dsn: str) -> tuple[dict[str, Any], list[str]]:
    """I4's money part, straight from Postgres after the quiet period; returns figures and failures."""
    from tenant_runtime.billing.ledger import Ledger

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, server_settings={"application_name": "chaos-check"})
    assert pool is not None
    try:
        discrepancies = await Ledger(pool).reconcile()
        row = await pool.fetchrow(
            """SELECT
                 (SELECT count(*) FROM accounts WHERE available < 0 OR held < 0) AS negative,
                 (SELECT coalesce(sum(available + held), 0) FROM accounts)::bigint AS balances,
                 (SELECT coalesce(sum(held), 0) FROM accounts)::bigint AS held,
                 (SELECT count(*) FROM holds WHERE status = 'pending') AS pending_holds,
                 (SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE kind = ANY($1::text[]))::bigint AS credits,
                 (SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE kind = ANY($2::text[]))::bigint AS debits,
                 (SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE kind = 'commit')::bigint AS committed,
                 (SELECT count(*) FROM ledger_entries WHERE kind = 'commit') AS commits,
                 (SELECT count(*) FROM jobs WHERE status = 'delivered') AS delivered""",
            list(CREDIT_KINDS),
            list(DEBIT_KINDS),
        )
        jobs = {r["status"]: int(r["n"]) for r in await pool.fetch("SELECT status, count(*) AS n FROM jobs GROUP BY 1")}
    finally:
        await pool.close()
    assert row is not None
    expected = row["credits"] - row["debits"] - row["committed"]
    figures = {
        "jobs": jobs,
        "reconcile_discrepancies": len(discrepancies),
        "negative_accounts": row["negative"],
        "held": row["held"],
        "pending_holds": row["pending_holds"],
        "sum_balances": row["balances"],
        "expected_balances": expected,
        "commits": row["commits"],
        "delivered_jobs": row["delivered"],
    }
    failures = []
    if row["negative"]:
        failures.append(f"{row['negative']} accounts with a negative balance")
    if row["held"] or row["pending_holds"]:
        failures.append(f"money still held: {row['held']} in {row['pending_holds']} pending holds")
    open_jobs = {s: n for s, n in jobs.items() if s not in ("delivered", "failed")}
    if open_jobs:
        failures.append(f"jobs not final: {open_jobs}")
    if discrepancies:
        failures.append(f"Ledger.reconcile(): {len(discrepancies)} accounts disagree, e.g. {discrepancies[0]}")
    if row["balances"] != expected:
        failures.append(f"Σ balances {row['balances']} ≠ credits − debits − commits = {expected}")
    if row["commits"] != row["delivered"]:
        failures.append(f"{row['commits']} commits for {row['delivered']} delivered jobs")
    return figures, failures


async def open_jobs(dsn: str) -> int:
    conn = await asyncpg.connect(dsn, server_settings={"application_name": "chaos-check"})
    try:
        return int(await conn.fetchval("SELECT count(*) FROM jobs WHERE status NOT IN ('delivered', 'failed')"))
    finally:
        await conn.close()
