"""How a MongoDB server runs each per-trial operation of ours: ``explain`` of every command a trial sends.

    python -m benchmarks.mongo_explain mongodb://HOST:PORT/DATABASE [--history 10000]

Brings a new experiment (``explain_<pid>``) to ``--history`` trials by bulk
writes (as the physical-floor workload does), runs a few trials of workload
1's graph, records the commands of the last one with pymongo's command
monitoring, then asks the server to ``explain`` each of them (one statement
at a time, verbosity ``queryPlanner``) and prints the stages of the winning
plan: ``IDHACK``, ``EXPRESS_IXSCAN`` and ``IXSCAN`` read an index, ``COLLSCAN``
reads the whole collection. The experiment's collection is removed at the
end.

Run it against a real ``mongod``: the MongoDB-wire test server of the suite
(secantus) answers ``explain`` with plans that need not be how it runs the
command.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the repository, not this folder


def plan_stages(plan: dict[str, Any]) -> list[str]:
    """The stages of a winning plan, outermost first."""
    stages = [plan.get("stage", "?")]
    for child in [plan.get("inputStage"), *plan.get("inputStages", [])]:
        if child:
            stages += plan_stages(child)
    return stages


def statements(name: str, command: dict[str, Any]) -> list[dict[str, Any]]:
    """The commands to explain for one command sent: one per statement of an update."""
    collection = command[name]
    if name == "findAndModify":
        return [{"findAndModify": collection, "query": command["query"], "update": command["update"]}]
    if name == "find":
        return [{"find": collection, "filter": command["filter"]}]
    if name == "update":
        return [{"update": collection, "updates": [u]} for u in command["updates"]]
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mongo_explain")
    parser.add_argument("uri")
    parser.add_argument("--history", type=int, default=10_000, help="trials stored before the explained trial")
    args = parser.parse_args(argv)

    import pymongo
    from pymongo import monitoring

    import daskperiment
    from benchmarks.workloads.physical_floor import fill_ours

    sent: list[tuple[str, dict[str, Any]]] = []

    class Listener(monitoring.CommandListener):
        def started(self, event: Any) -> None:
            sent.append((event.command_name, dict(event.command)))

        def succeeded(self, event: Any) -> None:
            pass

        def failed(self, event: Any) -> None:
            pass

    client = pymongo.MongoClient(args.uri, event_listeners=[Listener()])
    database = client.get_default_database()
    experiment_id = f"explain_{os.getpid()}"
    ex = daskperiment.Experiment(experiment_id, backend=database, script_mode=False)
    a, b = ex.parameter("a"), ex.parameter("b")

    @ex
    def prepare(a: int, b: int) -> int:
        return a + b

    @ex.result
    def score(s: int) -> float:
        for i in range(10):
            ex.save_metric(f"m{i}", epoch=0, value=float(s + i))
        return s * 0.5

    result = score(prepare(a, b))
    try:
        ex.run(result, a=0, b=2, scheduler="sync")
        fill_ours(ex, args.history)
        ex.run(result, a=1, b=2, scheduler="sync")
        sent.clear()
        ex.run(result, a=2, b=2, scheduler="sync")
        trial = list(sent)
        print(f"server {client.server_info().get('version')} ({args.uri.split('@')[-1]}), history of "
              f"{ex.backend.last_trial_id():,} trials; the {len(trial)} commands of one trial:")
        for name, command in trial:
            for statement in statements(name, command):
                explained = database.command({"explain": statement, "verbosity": "queryPlanner"})
                stages = plan_stages(explained["queryPlanner"]["winningPlan"])
                target = statement.get("query") or statement.get("filter") or statement["updates"][0]["q"]
                print(f"  {name:<14} {command[name]:<28} {' > '.join(stages):<24} {str(target)[:70]}")
    finally:
        database.drop_collection(f"daskperiment_{experiment_id}")
        client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
