"""Time to first token and tokens/s: one client, then 4 concurrent clients in 3 workloads.

Servers, all with the same model, threads and greedy sampling:

  llama-server        llama.cpp's own C++ server, built once from the llama.cpp that the
                      installed llama-cpp-python vendors (`--build-llama-server`), run as
                      `llama-server -np 4 -c 8192 -t T -tb T` (its defaults otherwise:
                      prompt cache on);
  ishan               `ishan infer serve` with one worker (`--slots 4`);
  ishan worker only   (single client) that service's worker asked straight, without the
                      coordinator between: the decode loop alone, and what the hop costs;
  llama_cpp.server    llama-cpp-python's server (`--interrupt_requests false`: one
                      request at a time, none cut off);
  direct              llama-cpp-python called in this process, one request at a time.

The prompt is read verbatim everywhere (`"raw": true` on the coordinator API, whose
default is the chat template). Single client: 128 tokens, prompts new every round.
Concurrent: `--clients` (4) clients start together, 128 tokens each with `ignore_eos`
(llama-cpp-python: a -inf logit bias on the end-of-generation tokens) so every stream is
exactly 128 tokens, in three workloads:

  1. different short prompts;
  2. a shared ~240-token system prefix, warm (each server saw it before), plus a short
     question new every round;
  3. a fresh shared prefix (new every round) arriving at all clients at once.

The clients run in this process and read the streams through a plain socket (`--client
socket`, the default), so that what they spend per token, which on 2 cores comes out of
the server's decode threads, stays small; `--client httpx` reads them through one shared
httpx client instead (on this machine the rates were within the noise either way).

Within each round the servers take turns (so machine drift hits them alike); per-round
ratios to llama-server (single client: to direct), then their median. Aggregate tok/s is
all tokens over the round's wall time; TTFT p50 and max are over the clients of a round,
median over rounds.

The package: `baselines` (llama-server, its build, llama_cpp.server, direct), `ishan` (the
service and its worker asked straight), `clients` (the streaming clients and the server
processes), `workloads` (prompts and rounds) and `report` (the tables); `__main__` runs them.

    python -m bench.infer [--rounds 7] [--concurrent-rounds 3] [--threads 2] [--model PATH]
    python -m bench.infer --build-llama-server      # once: about 10-20 minutes on 2 cores
    python -m bench.infer --without-llama-server    # no llama-server row (not built)
"""
