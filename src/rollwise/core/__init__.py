"""rollwise.core: sans-I/O decisions. `decide(rollout, observed, now) -> Decision`.

Synchronous and pure: no asyncio, sqlite, http, subprocess or sockets; time is passed in.
"""

from rollwise.core.decisions import Decision
from rollwise.core.rollouts import decide

__all__ = ["Decision", "decide"]
