"""Tenants of a shared `ishan infer` service: keys, quotas, usage (see docs/infer/tenants.md).

`book` reads and writes the tenants file, `quotas` holds sessions and token windows, `gate`
is what the coordinator asks, `metrics` shows usage per tenant.
"""
