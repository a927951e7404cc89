"""Signals the market sends to code it does not know (the demo's agents listen to them)."""

from django.dispatch import Signal

# Sent by ``advance_intervals`` at each moment of a replayed clock, for all the communities it
# replays at once: once before that moment's due steps run (``phase="before_steps"``: post for
# gates that close within ``window``) and once after (``phase="after_steps"``: meter what was
# delivered). Receivers take ``communities`` (a list), ``moment``, ``window`` and ``phase`` and
# return how many postings they made. Once per moment, not per community: a month replayed for
# a hundred communities is 288,000 community-moments, and a receiver's query each was a tenth
# of the replay.
clock_replayed = Signal()
