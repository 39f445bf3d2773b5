"""Seeded fault simulation of the supervisor, in the style of TigerBeetle's VOPR and Jepsen.

`python -m bench chaos --seed N --minutes M` runs three real supervisor processes against the fake
Telegram and fake KIE with ~30 tenants and simulated users, applies a random schedule of faults drawn
from `random.Random(N)` (kills, SIGTERM, SIGSTOP/SIGCONT, terminated Postgres sessions, Telegram cut off
from one replica, KIE hanging, token rotation, mode change, disable/enable, remove/re-add, markup
change), checks the invariants I1-I5 (see `invariants`) and prints the figures, every violation and,
when something failed, the event log and the command that replays it.

Modules: `schedule` (events from the seed), `cluster` (replicas, tenants, CLI), `proxy` (the Telegram
link a replica can be cut from), `traffic` (users), `observe` (what Telegram and the replicas show),
`faults` (applying events), `invariants` (checks), `report` (output), `run` (one run), `cli`.
"""
