"""The infer benchmark's workloads: the prompts, one client's rounds, concurrent rounds."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from ishan_tools.infer.timing import StreamTimer

from .clients import Server, Timed

PROMPT = "Story {n}. Once upon a time, in a small village by the sea, there lived"
SYSTEM = (
    "You are Marlow, the assistant of the Harbour Lights bookshop in Portsea. The shop opens "
    "from nine in the morning to six in the evening on weekdays, from ten to five on "
    "Saturdays, and stays closed on Sundays and bank holidays. It stocks new and second-hand "
    "books: fiction, poetry, local history, maritime history, maps and charts, cookery, "
    "gardening and a large children's corner. Orders for books not on the shelves take three "
    "to five working days and can be collected in the shop or posted for a small fee. The "
    "reading club meets on the first Thursday of every month at seven; this season it reads "
    "novels about the sea. Author readings are announced in the window and in the monthly "
    "newsletter. Gift cards come in any amount from five pounds. Answer customers briefly "
    "and kindly, in plain English, and never invent a title, a price or an event: when you "
    "do not know, say so and suggest calling the shop. Keep answers short. Never promise "
    "delivery dates for special orders. If a customer asks about something the shop does "
    "not do, point them to the library on the high street or the tourist office by the pier.\n"
)
QUESTIONS = ("When do you open?", "Do you sell maps?", "Any readings soon?", "Gift cards?")


def workload_prompts(workload: int, round_: int, clients: int, server: str) -> list[str]:
    if workload == 1:
        return [PROMPT.format(n=1000 + 10 * round_ + i) for i in range(clients)]
    questions = [f"Customer {round_}-{i}: {QUESTIONS[i % len(QUESTIONS)]}" for i in range(clients)]
    if workload == 2:
        return [f"{SYSTEM}{q}\nMarlow:" for q in questions]
    fresh = f"Conversation {round_} on {server}, kept apart from the others. "
    return [f"{fresh}{SYSTEM}{q}\nMarlow:" for q in questions]


WORKLOADS = {
    1: "4 different short prompts",
    2: "shared ~240-token system prefix, warm",
    3: "fresh shared prefix, 4 clients at once",
}


def concurrent_round(server: Server, prompts: list[str]) -> list[Timed]:
    """One client per prompt, all started together, each on its own connection."""
    start = threading.Barrier(len(prompts))

    def one(prompt: str) -> Timed:
        start.wait()
        return server.one(prompt, True)

    with ThreadPoolExecutor(len(prompts)) as pool:
        return list(pool.map(one, prompts))


def warm_up(servers: list[Server]) -> None:
    """Page in the weights; workload 2's prefix is seen by every server before it counts."""
    for server in servers:
        server.one(PROMPT.format(n=-1))
        server.one(f"{SYSTEM}{QUESTIONS[0]}\nMarlow:")


def single_client(servers: list[Server], rounds: int) -> dict[str, list[StreamTimer]]:
    """One client, a new prompt every round; the servers take turns within each round."""
    single: dict[str, list[StreamTimer]] = {s.name: [] for s in reversed(servers)}
    for round_ in range(rounds):
        for server in servers:
            single[server.name].append(server.one(PROMPT.format(n=round_))[0])
    return single


def concurrent_clients(
    servers: list[Server], rounds: int, clients: int
) -> dict[int, dict[str, list[list[Timed]]]]:
    """Each workload's rounds, `clients` clients at once: {workload: {server: [round]}}."""
    results: dict[int, dict[str, list[list[Timed]]]] = {
        w: {s.name: [] for s in servers} for w in WORKLOADS
    }
    for round_ in range(rounds):
        for workload in WORKLOADS:
            for server in servers:
                prompts = workload_prompts(workload, round_, clients, server.name)
                results[workload][server.name].append(concurrent_round(server, prompts))
    return results
