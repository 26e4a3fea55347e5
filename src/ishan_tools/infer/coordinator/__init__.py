"""The coordinator process: the clients' entry point in front of the workers.

It never imports llama_cpp nor `ishan_tools.infer.worker`: workers own the model and are
reached over HTTP. `app` serves the coordinator API (`/coordinator/...`) and, through
`openai_api`, the OpenAI API; `registry`, `scheduler` and `relay` pick a worker and carry its
tokens; `supervisor` runs a coordinator with local worker processes (`ishan infer serve`).
"""
