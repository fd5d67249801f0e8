"""`finpulse ingest run | replay | generate | status` and `finpulse bench ingest`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ingest.config import IngestConfig, SourceConfigError, build_config

if TYPE_CHECKING:  # the source kinds load Kafka and HTTP clients: only the commands that run them import them
    from ingest.sources.replay import Config as ReplayConfig

ingest_app = typer.Typer(help="Ingest workers: feeds, APIs, push, replay, scenario generator.", no_args_is_help=True)


def _settings():
    from finpulse.cli import get_settings

    return get_settings()


def _config(config: Path | None = None, **overrides) -> IngestConfig:
    try:
        return build_config(_settings(), config, **overrides)
    except SourceConfigError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc


def _worker(cfg: IngestConfig):
    from ingest.worker import Worker, WorkerBusy

    try:
        return Worker(cfg)
    except WorkerBusy as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc


def _run_finite(cfg: IngestConfig, source, label: str) -> None:
    worker = _worker(cfg)
    started = time.monotonic()
    worker.start([source])
    try:
        worker.wait_sources()
    except KeyboardInterrupt:
        typer.echo("interrupted; position saved, run again to continue", err=True)
    finally:
        worker.stop()
    took = time.monotonic() - started
    counts = worker.metrics.snapshot()["sources"].get(source.name, {})
    produced = counts.get("produced", 0)
    typer.echo(
        f"{label}: produced {produced}, duplicates {counts.get('duplicates', 0)}, "
        f"rejected {sum(counts.get('rejected', {}).values())}, errors {sum(counts.get('errors', {}).values())} "
        f"in {took:.1f}s ({produced / took if took else 0:.0f} docs/s) to {cfg.topic}"
    )


def run(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="sources.toml (default: settings).")] = None,
) -> None:
    """Run the configured sources and the push endpoint until stopped (SIGTERM / Ctrl-C)."""
    cfg = _config(config)
    worker = _worker(cfg)
    worker.start()
    typer.echo(
        f"ingest worker on http://{cfg.host}:{cfg.port} (push: POST /v1/push), sources: {cfg.source_names}", err=True
    )
    worker.serve()


def replay(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV, JSONL or Parquet file.")],
    speed: Annotated[
        float, typer.Option(help="History seconds per second (600 = 10 min/s); 0 = as fast as possible.")
    ] = 0.0,
    source: Annotated[
        str | None,
        typer.Option(
            help="Source name (default replay:<file stem>): its own position; texts seen before stay duplicates."
        ),
    ] = None,
    kind: Annotated[str, typer.Option(help="news or comment")] = "news",
    map_: Annotated[
        list[str] | None, typer.Option("--map", help="field=column, e.g. --map title=headline --map published_at=date")
    ] = None,
    max_gap: Annotated[float | None, typer.Option(help="Cap one wait at this many history seconds.")] = None,
    order: Annotated[str, typer.Option(help="time (sorted by timestamp) or file order.")] = "time",
    limit: Annotated[int | None, typer.Option(help="Replay only the first N rows.")] = None,
    shift_to_now: Annotated[
        bool,
        typer.Option(
            "--shift-to-now",
            help="Move the file's times so its newest row is now (gaps kept): old history as live news. Without "
            "it, rows older than FINPULSE_DOCUMENTS_TTL_DAYS reach Kafka but ClickHouse's retention drops them.",
        ),
    ] = False,
    keep_times: Annotated[
        bool,
        typer.Option(
            "--keep-times",
            help="Replay a file whose rows are all older than the documents' retention anyway (for Kafka "
            "consumers and backtests; ClickHouse drops them). Without it such a replay is refused.",
        ),
    ] = False,
) -> None:
    """Replay a file into finpulse.raw, keeping its time gaps scaled by --speed.

    Next to a running ingest worker (`finpulse up`) the replay is handed to that worker, so it shares its dedupe
    memory: replaying a file again adds nothing. Without one, it runs here on the same state dir. An interrupted
    replay continues where it stopped; a finished one is read again and only what is new is produced."""
    if map_ is None:
        map_ = []
    mapping = {}
    for pair in map_:
        field, sep, col = pair.partition("=")
        if not sep or not field or not col:
            raise typer.BadParameter(f"--map wants field=column, got {pair!r}")
        mapping[field] = col
    if kind not in ("news", "comment") or order not in ("time", "file"):
        raise typer.BadParameter("kind is news|comment, order is time|file")
    if speed < 0 or (limit is not None and limit < 1):
        raise typer.BadParameter("--speed must be >= 0 and --limit >= 1")
    from ingest.sources.replay import Config as ReplayConfig

    src_cfg = ReplayConfig(
        name=source or f"replay:{file.stem}",
        path=file.resolve(),
        mapping=mapping,
        speed=speed,
        max_gap_s=max_gap,
        kind=kind,
        order=order,
        limit=limit,  # type: ignore[arg-type]
    )
    from ingest.sources.replay import ReplayError, inspect, older_than
    from ingest.spool import running_worker
    from ingest.worker import Worker, WorkerBusy

    try:
        inspect(src_cfg)  # a wrong file is refused here, with its reason, before any worker is involved
        # Refused before anything is produced: once produced, the dedupe memory would also drop a later
        # --shift-to-now replay of the same rows, so they could not reach the dashboard for the dedupe window.
        ttl_days = _settings().documents_ttl_days
        old, total = older_than(src_cfg, time.time() - ttl_days * 86400, shift_to_now=shift_to_now)
        why = (
            f"older than the documents' retention ({ttl_days} days, FINPULSE_DOCUMENTS_TTL_DAYS)"
            f"{' even shifted to end now (the gaps are kept)' if shift_to_now else ''}: Kafka gets them but "
            "ClickHouse drops them, so the dashboard will not show them"
        )
        if old:
            if old == total and not keep_times and not shift_to_now:
                typer.secho(
                    f"error: all {total} rows are {why}. Pass --shift-to-now to replay them as recent news (gaps "
                    "kept), or --keep-times to replay them as they are.",
                    fg="red",
                    err=True,
                )
                raise typer.Exit(2)
            typer.secho(f"warning: {old} of {total} rows are {why}.", fg="yellow", err=True)
    except ReplayError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    cfg = _config(sources=(src_cfg,))
    if running_worker(cfg.state_dir) is None:
        try:
            worker = Worker(cfg)
        except WorkerBusy:  # a worker started since the check: hand the replay to it
            pass
        else:
            _replay_here(worker, cfg, src_cfg, shift_to_now)
            return
    _replay_via_worker(cfg, src_cfg, shift_to_now)


class _Progress:
    """A progress line on stderr every few seconds while a replay runs (when it moved, or every 30 s)."""

    def __init__(self, name: str, every_s: float = 2.0, quiet_s: float = 30.0) -> None:
        self.name, self.every_s, self.quiet_s = name, every_s, quiet_s
        self._last = time.monotonic()
        self._line = ""

    def __call__(self, counts: dict[str, int], waiting: str = "") -> None:
        now = time.monotonic()
        if now - self._last < self.every_s:
            return
        if waiting:
            line = waiting
        else:
            todo = max(counts.get("rows", 0) - counts.get("start", 0), 0)
            pct = f" ({100 * counts['read'] / todo:.0f}%)" if todo else ""
            line = (
                f"{counts['read']}/{todo} rows{pct}, {counts['accepted']} accepted, "
                f"{counts['duplicates']} duplicates, {counts['rejected']} rejected"
            )
        if line == self._line and now - self._last < self.quiet_s:
            return
        self._last, self._line = now, line
        typer.echo(f"{self.name}: {line}", err=True)


def _final_line(name: str, counts: dict[str, int], took: float, topic: str, via: str = "") -> None:
    read = counts.get("read", 0)
    resumed = f", resumed at row {counts['start'] + 1}" if counts.get("start") else ""
    typer.echo(
        f"{name}: {read} read, {counts.get('accepted', 0)} accepted, {counts.get('duplicates', 0)} duplicates, "
        f"{counts.get('rejected', 0)} rejected in {took:.1f}s ({read / took if took else 0:.0f} rows/s) "
        f"to {topic}{via}{resumed}"
    )


def _replay_here(worker, cfg: IngestConfig, src_cfg: ReplayConfig, shift_to_now: bool) -> None:
    from ingest.sources.replay import Source as ReplaySource

    progress = _Progress(src_cfg.name)
    source = ReplaySource(
        src_cfg,
        cfg.batch_size,
        rerun_finished=True,
        shift_to_now=shift_to_now,
        on_progress=lambda c: progress(c.as_dict()),
    )
    started = time.monotonic()
    worker.start([source])
    try:
        worker.wait_sources()
    except KeyboardInterrupt:
        typer.echo("interrupted; position saved, run again to continue", err=True)
    finally:
        worker.stop()
    if source.error:
        typer.secho(f"error: {source.error}", fg="red", err=True)
        raise typer.Exit(1)
    _final_line(src_cfg.name, source.counts.as_dict(), time.monotonic() - started, cfg.topic)


def _replay_via_worker(cfg: IngestConfig, src_cfg: ReplayConfig, shift_to_now: bool) -> None:
    from ingest import spool

    holder = spool.running_worker(cfg.state_dir)
    pid = f" (pid {holder.pid})" if holder and holder.pid else ""
    started = time.monotonic()
    job_id = spool.submit(cfg.state_dir, src_cfg, shift_to_now=shift_to_now)
    typer.echo(
        f"the ingest worker{pid} on {cfg.state_dir} is running: replay handed to it as job {job_id} "
        "(it shares the worker's dedupe memory)",
        err=True,
    )
    progress = _Progress(src_cfg.name)

    def show(state: spool.JobState | None) -> None:
        if state is None:
            progress({}, "waiting for the worker to take the job")
        elif not state.ready and not state.counts.get("read"):
            progress({}, "waiting for the worker's pipeline (Kafka)")
        else:
            progress(state.counts)

    try:
        state = spool.wait(cfg.state_dir, job_id, show)
    except spool.SpoolError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        spool.cancel(cfg.state_dir, job_id)
        deadline = time.monotonic() + 10
        state = spool.job_state(cfg.state_dir, job_id)
        while (state is None or not state.final) and time.monotonic() < deadline:
            time.sleep(0.2)
            state = spool.job_state(cfg.state_dir, job_id)
        typer.echo("interrupted; position saved, run again to continue", err=True)
        if state is None:
            return
    if state.state == "failed":
        typer.secho(f"error: {state.error}", fg="red", err=True)
        raise typer.Exit(1)
    took = time.monotonic() - started
    _final_line(src_cfg.name, state.counts, took, state.topic or cfg.topic, " via the running ingest worker")


def generate(
    rate: Annotated[
        float | None, typer.Option(help="Documents per second (default settings.ingest_generator_rate).")
    ] = None,
    scenario: Annotated[
        str | None, typer.Option(help="default, calm, bull, bear, negative_surge, negative_surge_cn.")
    ] = None,
    count: Annotated[int | None, typer.Option(help="Stop after N documents.")] = None,
    source: Annotated[str, typer.Option(help="Source name.")] = "generator",
    seed: Annotated[int, typer.Option(help="Same seed + source = same documents (ids) again.")] = 7,
) -> None:
    """Generate realistic English and Chinese headlines and comments with injected events."""
    from ingest.sources import generator as kind

    settings = _settings()
    gen = kind.Config(
        name=source,
        rate=rate or settings.ingest_generator_rate,
        scenario=scenario or settings.ingest_generator_scenario,
        seed=seed,
        count=count,
    )
    try:
        runner = kind.Source(gen, settings.ingest_batch_size)
    except kind.UnknownScenario as exc:
        raise typer.BadParameter(str(exc)) from exc
    cfg = _config(sources=(gen,))
    _run_finite(cfg, runner, source)


def status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Health and per-source counters of the running worker."""
    from ingest.service import ingest_endpoint, ingest_status

    settings = _settings()
    report = ingest_status(settings)
    if report is None:
        typer.secho(f"ingest worker not answering at {ingest_endpoint(settings)}", fg="red", err=True)
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(f"ingest {report['status']} (ready={report['ready']}, broker_up={report['broker_up']})")
    for name, c in sorted(report["sources"].items()):
        typer.echo(
            f"  {name:<28} fetched {c['fetched']:>8} produced {c['produced']:>8} dup {c['duplicates']:>6} "
            f"rejected {dict(c['rejected'])} errors {dict(c['errors'])}"
        )
    for job in report.get("replays", []):
        c = job["counts"]
        typer.echo(
            f"  replay job {job['id']} ({job['source']}): {c['read']}/{max(c['rows'] - c['start'], 0)} rows, "
            f"{c['accepted']} accepted, {c['duplicates']} duplicates, {c['rejected']} rejected"
        )


def bench(
    count: Annotated[int, typer.Option(help="Documents to generate and produce.")] = 20_000,
    source: Annotated[str | None, typer.Option(help="Source name (default: a fresh one per run).")] = None,
) -> None:
    """Produce throughput of the full shared path (normalise, dedupe, produce acks=all, checkpoint)."""
    from ingest.sources import generator as kind

    gen = kind.Config(name=source or f"bench-{int(time.time())}", rate=1e9, count=count, scenario="default")
    cfg = _config(sources=(gen,))
    _run_finite(cfg, kind.Source(gen, cfg.batch_size), "bench ingest")


ingest_app.command()(run)
ingest_app.command()(replay)
ingest_app.command()(generate)
ingest_app.command()(status)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.add_typer(ingest_app, name="ingest")
    bench_app.command("ingest")(bench)
