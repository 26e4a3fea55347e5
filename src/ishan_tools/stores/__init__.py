"""State stores in Redis, below the systems: any system may use them, they import none.

`breaker` holds `RedisBreakerStore`, the circuit breaker's state shared by every process
guarding the same thing. The breaker package itself imports no third-party library; this one
imports redis.
"""
