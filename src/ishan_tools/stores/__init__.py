"""State in Redis, below the systems: any system may use it, and it imports no system.

`client` makes clients that do not retry by themselves, names what a lost server raises and
registers Lua scripts; `retry` retries a call while the server is away, up to a limit;
`breaker` holds `RedisBreakerStore`, the circuit breaker's state shared by every process
guarding the same thing. The breaker package itself imports no third-party library; this one
imports redis.
"""
