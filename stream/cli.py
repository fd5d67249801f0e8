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


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.add_typer(stream_app, name="stream")
    bench_app.command("pipeline")(bench_pipeline_command)
