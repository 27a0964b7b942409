"""What a run's CPU accounting says about its numbers: the report's observations."""

from bench.results import WORKERS_2, Measurement, Results, Streams


def notes(results: Results) -> list[str]:
    """What the CPU accounting says about the run: bottlenecks, idle cores, other load."""
    found = []
    measurements: list[Measurement] = list(results.endpoints.values())
    for runs in results.chat_size.values():
        measurements += runs.values()
    if results.make_run is not None:
        measurements += results.make_run.endpoints.values()
    busiest = max(measurements, key=lambda m: m.cpu.wrk_pct)
    if busiest.cpu.wrk_pct < 80:
        found.append(
            f"wrk used at most {busiest.cpu.wrk_pct:.0f}% of a core ({busiest.label}): the "
            "load generator was not the bottleneck."
        )
    else:
        found.append(
            f"wrk used {busiest.cpu.wrk_pct:.0f}% of a core ({busiest.label}): it may have "
            "been the bottleneck there."
        )
    pins = results.pinning
    if pins["client"] and pins["client"] == pins["postgres"]:
        full = [m for m in measurements if m.cpu.wrk_pct + m.cpu.postgres_pct >= 90]
        if full:
            found.append(
                "The core that wrk and PostgreSQL share was (nearly) full during: "
                f"{', '.join(m.label for m in full)}."
            )
    database_bound = [m for m in measurements if m.cpu.postgres_pct >= 90]
    if database_bound:
        names = ", ".join(f"{m.label} ({m.cpu.postgres_pct:.0f}%)" for m in database_bound)
        found.append(
            f"PostgreSQL used a whole core during: {names}: there the database, not the "
            "Python worker, sets the pace (see the query plans above)."
        )
    idle = [m for m in measurements if m.name != "floor" and m.cpu.server_pct < 85]
    if idle:
        names = ", ".join(f"{m.label} ({m.cpu.server_pct:.0f}%)" for m in idle)
        found.append(
            f"The server's core was not saturated during: {names}. There the server waits "
            "(on PostgreSQL, on row locks or on its own threads) rather than computes."
        )
    disturbed = [m for m in measurements if m.cpu.other_pct >= 10 or m.cpu.steal_pct >= 5]
    if disturbed:
        names = ", ".join(
            f"{m.label} ({m.cpu.other_pct:.0f}% other, {m.cpu.steal_pct:.0f}% steal)"
            for m in disturbed
        )
        found.append(
            f"**Other load** on the machine (processes outside this benchmark, or CPU stolen "
            f"by the hypervisor) during: {names}. Those numbers are disturbed."
        )
    else:
        found.append(
            "No other load on the machine during the measured runs (under 10% of a core "
            "outside the server, PostgreSQL and wrk; under 5% stolen by the hypervisor)."
        )
    repeated = results.config.get("runs_repeated") or []
    if repeated:
        found.append(
            f"{len(repeated)} measured runs were repeated because of other load "
            f"({', '.join(sorted(set(repeated)))}); "
            f"the run spent {results.config.get('quiet_waited_s', 0)} s waiting for quiet."
        )
    before = results.machine.get("busy_cores_before", 0.0)
    if before >= 0.15:
        found.append(f"The machine was {100 * before:.0f}% busy (of one core) before the run.")
    pool = results.config.get("delete_pool_grown_by") or []
    if pool:
        found.append(f"The DELETE pool was grown during the run by {sum(pool):,} chats.")
    return found + _streams(results)


def _streams(results: Results) -> list[str]:
    """The stream client's share of its core, and other load during the stream windows."""
    streams = results.streams
    if streams is None:
        return []
    windows = {
        "idle streams": streams.idle.with_streams,
        "delivery": streams.delivery.cpu,
        "POST with streams": streams.post_with.cpu,
    }
    busiest = max(windows, key=lambda name: windows[name].clients_pct)
    client = windows[busiest].clients_pct
    bottleneck = "was not the bottleneck" if client < 80 else "may have been the bottleneck"
    found = [
        f"The stream client used at most {client:.0f}% of a core ({busiest}): holding the "
        f"streams {bottleneck}."
    ]
    pins = results.pinning
    if pins["client"] and pins["client"] == pins["postgres"]:
        full = [
            name
            for name, cpu in windows.items()
            if cpu.wrk_pct + cpu.postgres_pct + cpu.clients_pct >= 90
        ]
        if full:
            found.append(
                "The core that the load generator, PostgreSQL and the stream client share was "
                f"(nearly) full during: {', '.join(full)}."
            )
    disturbed = [name for name, cpu in windows.items() if cpu.other_pct >= 10]
    if disturbed:
        found.append(
            f"**Other load** on the machine during the stream windows: {', '.join(disturbed)}."
        )
    return found + _workers(results, streams)


def _workers(results: Results, streams: Streams) -> list[str]:
    """Whether the WORKERS=2 runs had the machine to themselves: two workers need two cores,
    and PostgreSQL and wrk run on the same ones."""
    cores = int(results.machine["cores"])
    full = []
    for what, runs in (("GET", streams.workers), ("POST", streams.workers_post)):
        two = runs.get(WORKERS_2)
        if two is not None and two.cpu.busy_pct >= 90 * cores:
            busy, server = two.cpu.busy_pct, two.cpu.server_pct
            full.append(f"{what} ({busy:.0f}% in all, the server {server:.0f}%)")
    if not full:
        return []
    return [
        f"The machine's {cores} cores were (nearly) full during the WORKERS=2 runs: "
        f"{', '.join(full)}. There the second worker got what PostgreSQL and wrk left of the "
        "cores: the ratio to one worker is bound by the machine, not only by the service."
    ]
