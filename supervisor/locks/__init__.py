"""All of a process's tenant locks on ONE dedicated connection (the "locker" pattern of Que).

Pools reset advisory locks on release, so the locks live on a connection of their own. Every beat
(1 s) the locker publishes what this process is able to serve, reads its peers, and rebalances; the
result, "which tenants does my lock session hold right now", goes to `on_held` on every beat
(level-triggered: a missed change is corrected at the next beat, never lost).

- **Trust window.** If no beat succeeded within it (shorter than the server's own detection time, see
  KEEPALIVE_SETTINGS), or the connection is reported closed, every tenant steps down at once, before
  another process could have taken its lock.
- **Fair share among able processes.** Each live locker publishes (in `lockers`) how many tenants it
  is able to serve and how many locks it holds. A process's share is ceil(wanted / able lockers); it
  releases excess only to a peer with room, and takes a free lock beyond its share once that lock
  stayed free for a full beat (a peer that cannot serve leaves it free). So a sick replica never makes
  a healthy one drop tenants.
- **Frozen peers are fenced.** A peer whose session is alive but whose beats stopped (SIGSTOP, a hung
  event loop) keeps its locks for ever; after FENCE_AFTER beats' worth of silence its lock session is
  terminated, which frees them. When it wakes, its own connection is gone and it steps down.
- **Only connection-class errors mean "locks lost".** Any other error (a removed tenant, a deadlock,
  the lock table full) is about some tenants: the held set is re-read from `pg_locks` and the beat
  goes on.

The locker's modules: `locker` (the beat: trust window, share, hand-over, a full lock table), `peers`
(the `lockers` rows and fencing), `keys` (the advisory locks themselves), `holders` (`lock_holders`).
"""

from __future__ import annotations

from supervisor.locks.locker import Locker
from supervisor.locks.peers import Peer

__all__ = ["Locker", "Peer"]
