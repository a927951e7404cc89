"""Run every pipeline step that is due at a moment (default: now), synchronously, for operators.

``--now`` is a moment with its UTC offset or an offset from now (``+2d``, ``+6h``, ``+90m``).
With ``--now`` in the future the command replays the time in between in steps of ``--step``
(15 minutes unless told): at each step it opens the rolling horizon, lets whoever listens to
``clock_replayed`` (the demo's agents) post before the gate closures of the step and meter after
delivery, and runs the steps due by then. A longer step does the same work in fewer, larger
batches (a replay of history without agents); each step is still recorded at the replayed
moment it ran. So ``seed_demo`` followed by ``advance_intervals --now <two days later>``
leaves two days of intervals worked through, just as the beat would have done in real time.
The steps are the pipeline's own idempotent services, so running the command while a worker
runs, or twice, does nothing twice.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from marketplace.models import Community, Interval, IntervalState
from marketplace.services.pipeline import intervals_advance_due, intervals_open_all
from marketplace.signals import clock_replayed

LONGEST_STEP = timedelta(days=1)
RELATIVE = re.compile(r"^\+(\d{1,5})([dhm])$")
UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_moment(text: str, *, now: datetime) -> datetime:
    """An ISO-8601 moment with its UTC offset, or one relative to `now`: +2d, +6h, +90m."""
    relative = RELATIVE.match(text.strip())
    if relative:
        return now + timedelta(**{UNITS[relative.group(2)]: int(relative.group(1))})
    moment = parse_datetime(text)
    if moment is None:
        raise CommandError(
            f"--now must be an ISO-8601 date and time or +<n>d, +<n>h, +<n>m, not {text!r}"
        )
    if timezone.is_naive(moment):
        raise CommandError("--now needs a UTC offset (e.g. 2026-05-01T12:00:00Z)")
    return moment


def parse_step(text: str) -> timedelta:
    """``"15m"``, ``"2h"``, ``"1d"`` -> the replayed clock's step, from a minute to a day."""
    match = re.match(r"^(\d{1,5})([dhm])$", text.strip())
    step = timedelta(**{UNITS[match.group(2)]: int(match.group(1))}) if match else None
    if step is None or not timedelta(minutes=1) <= step <= LONGEST_STEP:
        raise CommandError(
            f"--step must be <n>m, <n>h or <n>d from 1m to 1d (e.g. 15m, 2h), not {text!r}"
        )
    return step


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> (K, N) with 0 <= K < N."""
    match = re.match(r"^(\d{1,4})/(\d{1,4})$", text.strip())
    if not match or not 0 <= int(match.group(1)) < int(match.group(2)):
        raise CommandError(f"--shard must be K/N with 0 <= K < N (e.g. 0/2), not {text!r}")
    return int(match.group(1)), int(match.group(2))


class Command(BaseCommand):
    help = "Advance every interval that is due at --now (default: now) through the pipeline."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--community", metavar="SLUG", help="Only this community.")
        parser.add_argument(
            "--shard",
            metavar="K/N",
            help="Only the communities of shard K of N (community id mod N = K, as "
            "PEERGRID_QUEUE_SHARDS routes them), so N processes can replay N shards at once.",
        )
        parser.add_argument(
            "--now",
            metavar="MOMENT",
            help="The moment to advance to: ISO 8601 with offset, or from now as +2d, +6h, +90m "
            "(default: now).",
        )
        parser.add_argument(
            "--step",
            metavar="DURATION",
            default="15m",
            help="The replayed clock's step: <n>m, <n>h or <n>d, from 1m to 1d (default: 15m).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        target = parse_moment(options["now"], now=now) if options["now"] else now
        step = parse_step(options["step"])
        communities = list(Community.objects.order_by("pk"))
        if options["community"]:
            communities = [c for c in communities if c.slug == options["community"]]
            if not communities:
                raise CommandError(f"no community with slug {options['community']!r}")
        if options["shard"]:
            shard, shards = parse_shard(options["shard"])
            communities = [c for c in communities if c.pk % shards == shard]
        moments = self._moments(target, communities, step)
        steps = 0
        posted = 0
        errors: list[str] = []
        for moment in moments:
            intervals_open_all(now=moment, communities=communities)
            # Agents post before the gates that close before the next step.
            posted += self._replayed("before_steps", communities, moment, step)
            # All communities' due steps in one pass (one query for what is due, not one each).
            done, failed = intervals_advance_due(now=moment, communities=communities)
            steps += done
            errors += failed
            self._replayed("after_steps", communities, moment, step)
        self._report(target, len(moments), steps, posted, errors, communities)
        if errors:
            raise CommandError(f"{len(errors)} step(s) failed; see above and the intervals' errors")

    def _replayed(
        self, phase: str, communities: list[Community], moment: datetime, step: timedelta
    ) -> int:
        replies = clock_replayed.send(
            sender=self.__class__, phase=phase, communities=communities, moment=moment,
            window=step,
        )  # fmt: skip
        return sum(int(posted or 0) for _, posted in replies)

    def _moments(
        self, target: datetime, communities: list[Community], step: timedelta
    ) -> list[datetime]:
        """The replayed clock: from the earliest pending gate closure (or now) up to ``target``."""
        start = timezone.now()
        earliest = (
            Interval.objects.filter(community__in=communities, state=IntervalState.OPEN)
            .order_by("gate_closure_at")
            .values_list("gate_closure_at", flat=True)
            .first()
        )
        if earliest is not None:
            # One step before it, so the agents can still post for that interval.
            start = min(start, earliest - step)
        moments: list[datetime] = []
        moment = start
        while moment < target:
            moments.append(moment)
            moment += step
        moments.append(target)
        return moments

    def _report(
        self,
        target: datetime,
        moments: int,
        steps: int,
        posted: int,
        errors: list[str],
        communities: list[Community],
    ) -> None:
        self.stdout.write(
            f"Advanced to {target.isoformat()} in {moments} step(s) of the clock: "
            f"{steps} pipeline step(s) done, {posted} agent posting(s)."
        )
        states = Counter(
            Interval.objects.filter(community__in=communities).values_list("state", flat=True)
        )
        for state in IntervalState.values:
            if states[state]:
                self.stdout.write(f"  {state:<13} {states[state]} interval(s)")
        for error in errors:
            self.stderr.write(self.style.ERROR(f"  {error}"))
