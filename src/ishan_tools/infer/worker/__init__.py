"""The worker process: one model, its batched decode loop, and the HTTP app around it.

The only part of the toolkit that imports llama_cpp (`engine`, `decoder`, `batch`,
`sampling` and `template`).
`app` serves `POST /worker/generate` and `GET /worker/health` and sends heartbeats to a
coordinator; `runner` drives an engine in this process for `ishan infer run`.
"""
