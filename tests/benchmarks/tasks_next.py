"""Task assignment at scale: bulk creation and ``POST /api/tasks/next``.

    python tests/benchmarks/tasks_next.py [--instances 100000] [--users 1000] [--seconds 10]

Sets up 10 teams of 100 annotators each (varied tracing levels), one project
per team with its own priority, then creates tasks in batches of 10,000 (the
bulk-creation figure) until there are ``--instances`` open instances (two per
task, a third of the tasks requiring tracing >= 2). Then:

* latency: 500 sequential ``tasks/next`` calls by different users, p50/p99;
* throughput: 20 concurrent clients (each cycling through its own 50 users)
  for ``--seconds``; assignments/s, and a check that no instance was handed
  out twice (from the answers and from the database).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks.harness import collab_server, machine, pct

TEAMS = 10


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    async with collab_server() as server:
        admin = httpx.AsyncClient(
            base_url=server.url, headers={"authorization": f"Bearer {server.token}"}, timeout=120
        )
        teams = [
            (await admin.post("/api/teams", json={"name": f"lab {t}"})).json()["id"]
            for t in range(TEAMS)
        ]
        users: list[tuple[int, str]] = []
        t0 = time.perf_counter()
        for u in range(args.users):
            r = await admin.post(
                "/api/users",
                json={
                    "name": f"a{u}",
                    "roles": ["annotator"],
                    "teams": [teams[u % TEAMS]],
                    "experiences": {"tracing": u % 4},
                },
            )
            users.append((r.json()["id"], r.json()["token"]))
        print(f"{args.users} users created in {time.perf_counter() - t0:.1f} s")
        task_type = (
            await admin.post("/api/tasktypes", json={"name": "trace", "modes": ["skeleton"]})
        ).json()["id"]
        projects = [
            (
                await admin.post(
                    "/api/projects", json={"name": f"p{t}", "team": team, "priority": t % 3}
                )
            ).json()["id"]
            for t, team in enumerate(teams)
        ]
        tasks_needed = args.instances // 2
        made = 0
        batch_times = []
        while made < tasks_needed:
            n = min(10_000, tasks_needed - made)
            body = [
                {
                    "project": projects[(made + k) % TEAMS],
                    "taskType": task_type,
                    "position": [(made + k) % 5000, 100, 200],
                    "instances": 2,
                    **(
                        {"experience": {"domain": "tracing", "min": 2}}
                        if (made + k) % 3 == 0
                        else {}
                    ),
                }
                for k in range(n)
            ]
            t0 = time.perf_counter()
            r = await admin.post("/api/tasks", json=body)
            batch_times.append(time.perf_counter() - t0)
            assert r.status_code == 201, r.text[:300]
            made += n
        print(
            f"bulk creation: {len(batch_times)} batches of up to 10,000 tasks (20,000 instances): "
            f"median {sorted(batch_times)[len(batch_times) // 2]:.2f} s, max {max(batch_times):.2f} s"
        )
        print(f"open instances: {made * 2:,}")

        tokens = [tok for _, tok in users]
        pool = [httpx.AsyncClient(base_url=server.url, timeout=60) for _ in range(20)]

        async def take(client: httpx.AsyncClient, token: str) -> httpx.Response:
            return await client.post(
                "/api/tasks/next", headers={"authorization": f"Bearer {token}"}
            )

        handed: list[int] = []
        # Latency: sequential calls by different users.
        lat = []
        for k in range(500):
            t0 = time.perf_counter()
            r = await take(pool[0], tokens[k % len(tokens)])
            lat.append(time.perf_counter() - t0)
            if r.status_code == 200:
                handed.append(r.json()["instance"])
        ms = [v * 1000 for v in lat]
        print(
            f"tasks/next latency, sequential, 500 calls: p50 {pct(ms, 50):.2f} ms p99 {pct(ms, 99):.2f} ms max {max(ms):.2f} ms"
        )

        # Throughput: 20 concurrent clients.
        deadline = time.monotonic() + args.seconds
        counts = {"ok": 0, "none": 0, "error": 0}

        async def worker(w: int) -> None:
            mine = tokens[w * 50 : (w + 1) * 50] or tokens
            k = 0
            while time.monotonic() < deadline:
                r = await take(pool[w], mine[k % len(mine)])
                k += 1
                if r.status_code == 200:
                    counts["ok"] += 1
                    handed.append(r.json()["instance"])
                elif r.status_code == 404:
                    counts["none"] += 1
                else:
                    counts["error"] += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(20)))
        elapsed = time.perf_counter() - t0
        print(
            f"tasks/next throughput, 20 concurrent clients, {elapsed:.1f} s: "
            f"{counts['ok'] / elapsed:,.0f} assignments/s ({counts['ok']} assigned, "
            f"{counts['none']} no_task, {counts['error']} errors)"
        )
        assert len(handed) == len(set(handed)), "an instance was handed out twice"
        in_progress = 0
        for project in projects:
            info = (await admin.get(f"/api/projects/{project}")).json()
            in_progress += info["instances"]["in_progress"]
        print(
            f"distinct instances handed out: {len(set(handed))} of {len(handed)} answers; "
            f"in progress in the database: {in_progress}"
        )
        assert in_progress == len(handed)
        for c in pool:
            await c.aclose()
        await admin.aclose()


if __name__ == "__main__":
    asyncio.run(main())
