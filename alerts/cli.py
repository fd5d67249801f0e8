"""`finpulse alerts run | receiver | check | rules | targets | list | ack | silence | test-send | deliveries |
backtest`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

alerts_app = typer.Typer(help="Alert engine, rules, webhook targets and deliveries.", no_args_is_help=True)


def _settings() -> Any:
    from finpulse.cli import get_settings

    return get_settings()


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {message}", fg="red", err=True)
    return typer.Exit(code)


@alerts_app.command("run")
def run_command() -> None:
    """Run the alert engine: evaluate rules, deliver notifications, serve /healthz and /metrics."""
    from alerts.rules import RuleFileError
    from alerts.service import AlertService

    settings = _settings()
    try:
        AlertService(settings).serve()
    except RuleFileError as exc:
        raise _fail(str(exc)) from exc


@alerts_app.command("receiver")
def receiver_command(
    port: Annotated[int | None, typer.Option(help="Port; default FINPULSE_ALERTS_RECEIVER_PORT.")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    secret: Annotated[
        str | None,
        typer.Option(help="Signature key; default the install's (FINPULSE_ALERTS_WEBHOOK_SECRET).", envvar=None),
    ] = None,
    fail_first: Annotated[int, typer.Option(help="Answer 500 to the first N requests (watch retries).")] = 0,
) -> None:
    """A local webhook receiver: verifies signatures and prints each delivery as a JSON line."""
    import uvicorn

    from alerts.receiver import ReceiverState, build_app, print_received

    settings = _settings()
    from alerts.secret_store import default_signing_secret

    key = secret if secret is not None else default_signing_secret(settings)  # the install's, like the sender's
    state = ReceiverState(secret=key, tolerance_s=settings.alerts_signature_tolerance_s, fail_first=fail_first)
    bind_port = port or settings.alerts_receiver_port
    typer.echo(f"receiving webhooks on http://{host}:{bind_port}/ (any path)", err=True)
    uvicorn.run(build_app(state, print_received), host=host, port=bind_port, log_level="warning", access_log=False)


@alerts_app.command("check")
def check_command(
    rules_file: Annotated[Path, typer.Argument(help="A TOML file of [[rule]] and [[target]] tables.")],
) -> None:
    """Validate a rules file without touching ClickHouse."""
    from alerts.config import load_file
    from alerts.rules import RuleFileError

    try:
        rules, targets = load_file(rules_file)
    except RuleFileError as exc:
        raise _fail(str(exc)) from exc
    for rule in rules:
        typer.echo(f"rule {rule.id}: {rule.kind} on {rule.scope.describe()}, threshold {rule.threshold:g}")
    for target in targets:
        typer.echo(f"target {target.name}: {target.format} -> {target.url}")


@alerts_app.command("rules")
def rules_command() -> None:
    """List the stored rules."""
    from alerts.store import list_rules

    for rule in list_rules(_settings()):
        state = "" if rule.enabled else " (disabled)"
        typer.echo(
            f"{rule.id}{state}: {rule.kind} [{rule.origin}] on {rule.scope.describe()}, group by {rule.group_by}"
        )


@alerts_app.command("targets")
def targets_command() -> None:
    """List the webhook targets (secrets are never printed)."""
    from alerts.store import list_targets

    for target in list_targets(_settings()):
        secret = "own secret" if target.secret is not None else "default secret"
        typer.echo(f"{target.name}: {target.format} -> {target.url} ({secret}{'' if target.enabled else ', disabled'})")


@alerts_app.command("list")
def list_command(
    state: Annotated[str | None, typer.Option(help="firing | acknowledged | resolved")] = None,
    limit: Annotated[int, typer.Option(help="Most alerts shown.")] = 50,
) -> None:
    """Alerts, newest first."""
    from alerts.store import list_alerts

    try:
        df = list_alerts(_settings(), state=state, limit=limit)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    for row in df.itertuples():
        typer.echo(f"{row.started_at} {row.state:<12} {row.id} {row.rule_id} {row.group_value or '-'}: {row.message}")


@alerts_app.command("ack")
def ack_command(alert_id: str, by: Annotated[str, typer.Option(help="Who acknowledges.")]) -> None:
    """Acknowledge an alert."""
    from alerts.store import NotFoundError, acknowledge

    try:
        acknowledge(_settings(), alert_id, by)
    except (NotFoundError, ValueError) as exc:
        raise _fail(str(exc), 1) from exc


@alerts_app.command("silence")
def silence_command(
    fingerprint_or_rule_id: str,
    minutes: Annotated[float, typer.Option(help="How long; 0 lifts a silence.")],
    by: Annotated[str, typer.Option(help="Who silences.")],
) -> None:
    """Silence webhook notifications of an alert series (fingerprint) or a rule."""
    from alerts.store import silence

    until = datetime.now(UTC) + timedelta(minutes=minutes)
    silence(_settings(), fingerprint_or_rule_id, until, by)
    typer.echo(f"silenced {fingerprint_or_rule_id} until {until:%Y-%m-%d %H:%M} UTC" if minutes else "silence lifted")


@alerts_app.command("test-send")
def test_send_command(target: str) -> None:
    """POST a test alert to a target once and show the outcome."""
    from alerts.store import NotFoundError, test_send

    try:
        result = test_send(_settings(), target)
    except NotFoundError as exc:
        raise _fail(str(exc), 1) from exc
    typer.echo(json.dumps(result.model_dump(), default=str))
    if not result.ok:
        raise typer.Exit(1)


@alerts_app.command("deliveries")
def deliveries_command(limit: Annotated[int, typer.Option(help="Most attempts shown.")] = 50) -> None:
    """The delivery log, newest first, and what is still pending in the outbox."""
    from alerts.store import list_deliveries, pending_deliveries

    settings = _settings()
    for row in list_deliveries(settings, limit=limit).itertuples():
        typer.echo(
            f"{row.delivered_at} {row.status:<9} {row.channel}:{row.target} attempt {row.attempt} "
            f"http={row.http_status} {row.latency_ms}ms {row.event} {row.delivery_id} {row.error[:80]}"
        )
    pending = pending_deliveries(settings)
    if len(pending):
        typer.echo(f"{len(pending)} deliveries pending in the outbox")


@alerts_app.command("backtest")
def backtest_command(
    rule_ref: Annotated[
        str | None, typer.Argument(metavar="RULE", help="A stored rule's id or name (or the rule's id in --file).")
    ] = None,
    since: Annotated[str, typer.Option(help="How far back: 7d, 12h, 90m (at most 90 days).")] = "7d",
    until: Annotated[
        str | None, typer.Option(help="End of the range, ISO-8601 (UTC when no offset); default now.")
    ] = None,
    rules_file: Annotated[
        Path | None, typer.Option("--file", help="Try a rule from this TOML file instead of a stored one.")
    ] = None,
    step: Annotated[int, typer.Option(help="Seconds between evaluations (whole minutes).")] = 60,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    series: Annotated[
        str, typer.Option(help="Metric series in --json: firing (groups that fired) | all | none.")
    ] = "firing",
) -> None:
    """When RULE would have fired over stored data: firing intervals per group (with its pending and cooldown),
    its metric against the threshold, and counts."""
    from alerts.backtest import BacktestError, backtest, parse_since, since_range

    if series not in ("firing", "all", "none"):
        raise _fail(f"--series {series!r}: use firing, all or none")
    if step < 60 or step % 60:
        raise _fail(f"--step {step}: whole minutes in seconds (60, 120, ...); the windows are whole minutes")
    try:
        since_s = parse_since(since)
        end = _parse_until(until)
    except (BacktestError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    from clickhouse_connect.driver.exceptions import Error as ClickHouseError

    from warehouse.client import create_client

    settings = _settings()
    try:
        rule = _backtest_rule(settings, rule_ref, rules_file)
        start, end = since_range(since_s, end)

        def progress(done: int, total: int) -> None:
            typer.echo(f"backtest {rule.id}: {done}/{total} minutes evaluated ({done / total:.0%})", err=True)

        client = create_client(settings)
        try:
            # A range of 10 hours or more reports progress on stderr (stdout stays the result).
            long_run = (end - start).total_seconds() / step >= 600
            result = backtest(client, rule, start=start, end=end, step_s=step, progress=progress if long_run else None)
        finally:
            client.close()
    except BacktestError as exc:
        raise _fail(str(exc)) from exc
    except ClickHouseError as exc:
        reason = str(exc).splitlines()[0][:300]
        raise _fail(f"ClickHouse did not answer ({reason}); is the stack up (`finpulse up`)?", 1) from exc
    if as_json:
        typer.echo(json.dumps(result.to_dict(series=series)))
        return
    _print_backtest(result)


def _parse_until(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"--until {text!r}: not an ISO-8601 time (e.g. 2026-12-01T12:00)") from exc
    from finpulse.timeutil import as_utc

    return as_utc(value)


def _backtest_rule(settings: Any, ref: str | None, rules_file: Path | None) -> Any:
    """The rule to replay: from --file (by id or name, or its only rule), else stored (by id, then by name)."""
    from alerts.rules import RuleFileError, load_rules_file
    from alerts.store import list_rules

    if rules_file is not None:
        try:
            rules, _ = load_rules_file(rules_file)
        except RuleFileError as exc:
            raise _fail(str(exc)) from exc
        where = f"rules file {rules_file}"
    else:
        if not ref:
            raise _fail("name a RULE (id or name; `finpulse alerts rules` lists them) or give --file")
        rules = list_rules(settings)
        where = "the stored rules (`finpulse alerts rules` lists them)"
    if ref is None:
        if len(rules) == 1:
            return rules[0]
        raise _fail(f"{where} holds {len(rules)} rules; name one: {', '.join(r.id for r in rules) or '-'}")
    for match in (lambda r: r.id == ref, lambda r: r.name == ref, lambda r: r.name.casefold() == ref.casefold()):
        found = [r for r in rules if match(r)]
        if len(found) == 1:
            return found[0]
    raise _fail(f"no rule {ref!r} in {where}")


def _print_backtest(result: Any) -> None:
    rule = result.rule
    typer.echo(
        f"rule {rule.id} ({rule.kind}, {result.metric} vs threshold {result.threshold:g}, counting "
        f"{result.counting}, cooldown {rule.cooldown_s}s, pending {rule.pending_s}s)"
    )
    typer.echo(
        f"{result.start:%Y-%m-%d %H:%M} .. {result.end:%Y-%m-%d %H:%M} UTC: {result.steps} evaluations, "
        f"{len(result.groups)} group(s) with documents, {result.queries} queries, {result.elapsed_s:.2f}s"
    )
    typer.echo(f"would have fired {result.firing_count} time(s)")
    for group in sorted(result.groups.values(), key=lambda g: (-len(g.firings), g.group)):
        if not group.values:
            continue
        peak = max(group.values)
        held = sum(group.conditions)
        name = group.group or "(all)"
        typer.echo(
            f"  {name}: {len(group.firings)} firing(s); max {result.metric} {peak:.3g}; condition held {held} of "
            f"{len(group.times)} minutes at volume"
        )
        for f in group.firings:
            until = f"{f.resolved_at:%m-%d %H:%M}" if f.resolved_at else "still firing"
            typer.echo(
                f"    {f.fired_at:%m-%d %H:%M} -> {until}  value {f.value:.3g} (peak {f.peak:.3g}), "
                f"{f.doc_count} docs: {f.message}"
            )


def bench_backtest_command(
    rows: Annotated[int, typer.Option(help="Documents to generate over 7 days.")] = 1_000_000,
    copies: Annotated[int, typer.Option(help="Syndicated copies per story.")] = 4,
) -> None:
    """Time a 7-day backtest of each default rule on --rows generated documents (a temporary local endpoint)."""
    from alerts.backtest_bench import run

    if rows < 1 or copies < 1:
        raise _fail("--rows and --copies must be at least 1")
    run(rows, copies)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")
    bench_app.command("backtest")(bench_backtest_command)
