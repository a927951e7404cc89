"""Signals the market sends to code it does not know (the demo's agents listen to them)."""

from django.dispatch import Signal

# Sent by ``advance_intervals`` at each moment of a replayed clock, for each community: once
# before that moment's due steps run (``phase="before_steps"``: post for gates that close
# within ``window``) and once after (``phase="after_steps"``: meter what was delivered).
# Receivers take ``community``, ``moment``, ``window`` and ``phase`` and return how many
# postings they made.
clock_replayed = Signal()
