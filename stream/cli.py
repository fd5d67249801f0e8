"""`finpulse stream run` and `finpulse bench pipeline`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

stream_app = typer.Typer(help="The stream: classify raw documents into ClickHouse.", no_args_is_help=True)


@stream_app.command("run")
def run_command(
    index: Annotated[
        int, typer.Option("--index", "-i", min=0, help="Worker index: health port = stream_port + index, GPU index.")
    ] = 0,
    group: Annotated[str | None, typer.Option(help="Consumer group (default: settings.stream_group).")] = None,
) -> None:
    """Run one stream worker until SIGTERM/Ctrl-C. Start several (distinct --index) to share the partitions."""
    from finpulse.cli import get_settings
    from stream.app import StreamWorker

    settings = get_settings()
    StreamWorker(settings, index=index, group=group).run()


def bench_pipeline_command(
    docs: Annotated[int, typer.Option("--docs", "-n", min=100, help="Documents for the throughput run.")] = 5000,
    latency_docs: Annotated[
        int, typer.Option(min=50, help="Documents for the latency run, produced at half the measured rate.")
    ] = 1500,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Push documents through a real local stack (broker, stream worker, ClickHouse) started for the run."""
    from finpulse.cli import get_settings
    from stream.bench import format_report, run_pipeline_bench

    settings = get_settings()
    report = run_pipeline_bench(settings, docs=docs, latency_docs=latency_docs, echo=lambda m: typer.echo(m, err=True))
    typer.echo(json.dumps(report, indent=2) if as_json else format_report(report))


def relabel_command(
    hours: Annotated[
        float | None,
        typer.Option(
            "--hours", min=0.001, help="Relabel documents published this many hours back (settings.relabel_hours)."
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Registry name or model directory (default: the promoted model).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Relabel recent documents with the promoted (or given) model; safe to run twice (current ones are skipped)."""
    from finpulse.cli import get_settings
    from stream.relabel import RelabelError, relabel_recent

    settings = get_settings()
    try:
        report = relabel_recent(settings, hours=hours, model=model, progress=not as_json)
    except RelabelError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    typer.echo(json.dumps(report.to_json(), indent=2) if as_json else report.summary())


def bench_rollup_command(
    rows: Annotated[int, typer.Option("--rows", "-n", min=1000, help="Documents generated over 7 days.")] = 1_000_000,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Count queries of the dashboard and alerts: 0002's rollup vs migration 0020's table (throwaway endpoint)."""
    from warehouse.rollup_bench import run

    figures = run(rows)
    if as_json:
        typer.echo(json.dumps(figures, indent=2))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.add_typer(stream_app, name="stream")
    app.command("relabel")(relabel_command)
    bench_app.command("rollup")(bench_rollup_command)
    bench_app.command("pipeline")(bench_pipeline_command)
