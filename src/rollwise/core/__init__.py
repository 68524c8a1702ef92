"""rollwise.core: sans-I/O decisions. `rollwise.core.rollouts.decide(rollout, observed, now)`.

Synchronous and pure: no asyncio, sqlite, http, subprocess or sockets; time is passed in.
Nothing is imported here, so that importing one small module of the core (timestamps, hashing)
does not load the whole engine and the models: the CLI's start-up time depends on it.
"""
