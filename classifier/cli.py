"""`finpulse train`, `finpulse evaluate`, `finpulse models ...` and `finpulse bench classifier`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from classifier.config import RecipeError

models_app = typer.Typer(
    help="The local model registry: list models, choose the one the stream uses.", no_args_is_help=True
)


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {message}", fg="red", err=True)
    return typer.Exit(code)


def train_command(
    config: Annotated[
        str | None, typer.Option("--config", "-c", help="Recipe TOML file, or a built-in recipe: default, full.")
    ] = None,
    base_model: Annotated[
        str | None, typer.Option("--base", help="Encoder: HF hub id, folder or packaged name.")
    ] = None,
    epochs: Annotated[float | None, typer.Option(help="Epochs (fractions allowed).")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many optimizer steps.")] = None,
    batch_size: Annotated[int | None, typer.Option()] = None,
    learning_rate: Annotated[float | None, typer.Option("--lr")] = None,
    max_examples: Annotated[int | None, typer.Option(help="Subsample the deduplicated data (quick runs).")] = None,
    eval_every_steps: Annotated[int | None, typer.Option()] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads (default: the cores available).")] = None,
    precision: Annotated[str | None, typer.Option(help="auto, fp32, bf16 or fp16.")] = None,
    datasets: Annotated[
        str | None, typer.Option(help="Comma-separated built-in sets: tfns_sentiment,tfns_topic,phrasebank,fiqa.")
    ] = None,
    data: Annotated[list[Path] | None, typer.Option("--data", help="Your own labeled CSV/JSONL/Parquet file.")] = None,
    task: Annotated[
        str, typer.Option(help="Task of --data files: sentiment or topic; 'entity' trains the entity-level model.")
    ] = "sentiment",
    text_column: Annotated[str, typer.Option(help="Text column of --data files.")] = "text",
    label_column: Annotated[str, typer.Option(help="Label column of --data files.")] = "label",
    data_dir: Annotated[
        Path | None, typer.Option(help="Folder with the built-in sets (default ../shared/data).")
    ] = None,
    from_hub: Annotated[bool, typer.Option("--from-hub", help="Load the built-in sets from the HF hub.")] = False,
    name: Annotated[
        str | None, typer.Option(help="Model name in the registry (default: derived, timestamped).")
    ] = None,
    promote: Annotated[bool, typer.Option("--promote/--no-promote", help="Make it the model the stream uses.")] = False,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda (default: settings.model_device).")] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="Train the quick TF-IDF + linear model (seconds) instead of a recipe.")
    ] = False,
) -> None:
    """Train the topic + sentiment model from a recipe (flags override it) and save it to the registry."""
    from classifier.config import load_recipe
    from classifier.data import DataError
    from classifier.model import ModelLoadError
    from classifier.registry import RegistryError
    from classifier.specs import DatasetSpec
    from classifier.train import train
    from finpulse.cli import get_settings

    settings = get_settings()
    if task == "entity":
        _train_entity(settings, data_dir, name, promote, quick)
        return
    if quick:
        from classifier.quick import train_quick

        try:
            names = [d.strip() for d in datasets.split(",") if d.strip()] if datasets is not None else None
            info = train_quick(
                settings, datasets=names, data_root=data_dir, name=name, promote=promote, echo=typer.echo
            )
        except (DataError, RegistryError, ValueError) as exc:
            raise _fail(str(exc)) from exc
        mark = " [promoted]" if info.promoted else ""
        typer.echo(f"saved {info.name} ({info.model_version}) to {info.path}{mark}")
        typer.echo(json.dumps(json.loads((info.path / "meta.json").read_text())["validation"], indent=2))
        return
    try:
        args = load_recipe(config).replace(
            base_model=base_model,
            epochs=epochs,
            max_steps=max_steps,
            batch_size=batch_size,
            learning_rate=learning_rate,
            max_examples=max_examples,
            eval_every_steps=eval_every_steps,
            seed=seed,
            threads=threads,
            precision=precision,
            datasets=[d.strip() for d in datasets.split(",") if d.strip()] if datasets is not None else None,
        )
        extra = [
            DatasetSpec(
                name=f"file:{p.name}",
                task=task,
                path=str(p.resolve()),
                text_column=text_column,
                label_column=label_column,
            )
            for p in data or []
        ]
        if extra and datasets is None:
            args = args.replace(datasets=[])
        info = train(
            args,
            settings,
            name=name,
            data_root=data_dir,
            extra_specs=extra,
            from_hub=from_hub,
            promote=promote,
            device=device,
        )
    except (RecipeError, DataError, ModelLoadError, RegistryError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"saved {info.name} ({info.model_version}) to {info.path}" + (" [promoted]" if info.promoted else ""))
    typer.echo(json.dumps(_headline(info.metrics), indent=2))


def _train_entity(settings, data_dir: Path | None, name: str | None, promote: bool, quick: bool) -> None:
    """`finpulse train --task entity [--quick]`: the entity-level sentiment + relevance model (classifier/entity)."""
    from classifier.data import DataError
    from classifier.entity.linear import train_entity
    from classifier.model import ModelLoadError
    from classifier.registry import RegistryError

    # --quick: TF-IDF features only (seconds); else settings.entity_tune_base is fine-tuned as a pair classifier
    # (minutes) and, when set, frozen pair embeddings of settings.entity_embed_base join the TF-IDF features
    embed_base = None if quick else (settings.entity_embed_base or None)
    tune_base = None if quick else (settings.entity_tune_base or None)
    typer.echo(
        f"entity: linear entity model, features: marked-mention TF-IDF + {embed_base or 'no'} pair embeddings; "
        f"pair classifier: {tune_base + ' (fine-tuned)' if tune_base else 'none'}"
    )
    try:
        info = train_entity(
            settings,
            data_root=data_dir,
            name=name,
            promote=promote,
            embed_base=embed_base,
            tune_base=tune_base,
            echo=typer.echo,
        )
    except (DataError, ModelLoadError, RegistryError, ValueError) as exc:  # a base that does not load: a message
        raise _fail(str(exc)) from exc
    typer.echo(f"saved {info.name} ({info.model_version}) to {info.path}" + (" [promoted]" if info.promoted else ""))
    typer.echo(json.dumps(info.metrics, indent=2))


def _headline(metrics: dict) -> dict:
    return {
        k: {"n": v["n"], "accuracy": round(v["accuracy"], 4), "macro_f1": round(v["macro_f1"], 4)}
        for k, v in metrics.items()
        if isinstance(v, dict) and "accuracy" in v
    }


def evaluate_command(
    data: Annotated[Path, typer.Option("--data", help="Labeled CSV/JSONL/Parquet file.")],
    model: Annotated[
        str, typer.Option("--model", "-m", help="Registry name, model directory, 'promoted' or 'latest'.")
    ] = "promoted",
    task: Annotated[
        str, typer.Option(help="sentiment, topic or entity ((text, entity, label) rows, or a FiQA / FinNSP file).")
    ] = "sentiment",
    text_column: Annotated[str, typer.Option()] = "text",
    label_column: Annotated[
        str, typer.Option(help="Gold column; a 'labels' column (used when 'label' is absent) is multi-label topics.")
    ] = "label",
    ignore_unknown_labels: Annotated[
        bool, typer.Option("--ignore-unknown-labels", help="Skip labels not in the label space (counted).")
    ] = False,
    plot: Annotated[Path | None, typer.Option(help="Confusion-matrix PNG (default under <data_dir>/eval/).")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Accuracy, macro-F1, per-class precision/recall/F1, confusion matrix (printed + PNG), calibration error."""
    from classifier.data import DataError
    from classifier.evaluate import evaluate
    from classifier.model import ModelLoadError
    from classifier.registry import Registry, RegistryError
    from classifier.serving import load_engine
    from finpulse.cli import get_settings

    settings = get_settings()
    if task == "entity":
        _evaluate_entity(settings, model, data, as_json)
        return
    if task not in ("sentiment", "topic"):
        raise _fail("--task must be sentiment, topic or entity")
    try:
        path = Registry.from_settings(settings).resolve(model)
        # any registry kind (quick linear model or transformer), loaded as the stream loads it
        engine = load_engine(path, settings, device or settings.model_device, threads=settings.model_threads)
        plot = plot or settings.data_dir / "eval" / f"{path.name}-{task}-{data.stem}.png"
        report = evaluate(
            engine,
            data,
            task,  # type: ignore[arg-type]
            text_column=text_column,
            label_column=label_column,
            ignore_unknown=ignore_unknown_labels,
            plot=plot,
        )
    except (DataError, ModelLoadError, RegistryError) as exc:
        raise _fail(str(exc)) from exc
    if as_json:
        typer.echo(json.dumps(report))
        return
    _print_report(report)


def _evaluate_entity(settings, model: str, data: Path, as_json: bool) -> None:
    from classifier.data import DataError
    from classifier.entity.evaluate import evaluate_entity, format_report
    from classifier.entity.linear import EntityEngine, entity_registry
    from classifier.model import ModelLoadError
    from classifier.registry import RegistryError

    try:
        path = entity_registry(settings).resolve(model)
        engine = EntityEngine.load(path, max_per_doc=settings.entity_max_per_doc)
        report = evaluate_entity(engine, data)
    except (DataError, ModelLoadError, RegistryError) as exc:
        raise _fail(str(exc)) from exc
    typer.echo(json.dumps(report) if as_json else format_report(report))


def _print_report(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"[bold]{report['model_version']}[/] on {report['data']} ({report['task']}, n={report['n']}): "
        f"accuracy {report['accuracy']:.4f}, macro-F1 {report['macro_f1']:.4f}, ECE {report['ece']:.4f}"
    )
    if report.get("multi_label"):
        console.print(
            f"multi-label gold: accuracy = top-1-in-gold; strict (training label) {report['primary_accuracy']:.4f}; "
            f"{report['excluded_no_gold']} row(s) excluded (no label maps to a topic)"
        )
    if report.get("dropped_labels"):
        console.print(f"skipped unknown labels: {report['dropped_labels']}")
    for lang, m in report.get("by_lang", {}).items():
        console.print(f"  {lang}: n={m['n']} accuracy {m['accuracy']:.4f} macro-F1 {m['macro_f1']:.4f}")
    table = Table("class", "precision", "recall", "F1", "support")
    for name, m in report["per_class"].items():
        table.add_row(name, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", str(m["support"]))
    console.print(table)
    confusion = Table("true \\ predicted", *[str(i) for i in range(len(report["labels"]))], title="confusion")
    for i, (name, row) in enumerate(zip(report["labels"], report["confusion"], strict=True)):
        confusion.add_row(f"{i} {name}", *[str(v) for v in row])
    console.print(confusion)
    console.print(f"confusion matrix PNG: {report.get('plot')}")


@models_app.command("list")
def models_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Models in the registry; the promoted one is marked."""
    from classifier.registry import Registry
    from finpulse.cli import get_settings

    registry = Registry.from_settings(get_settings())
    infos = registry.list()
    if as_json:
        typer.echo(json.dumps([{**i.to_json(), "metrics": _headline(i.metrics)} for i in infos]))
        return
    if not infos:
        typer.echo(f"no models in {registry.root}; run `finpulse train`")
        return
    for info in infos:
        head = _headline(info.metrics)
        brief = ", ".join(f"{k} acc {v['accuracy']:.3f}" for k, v in head.items() if "/" not in k)
        typer.echo(f"{'*' if info.promoted else ' '} {info.name}  {info.created_at}  {info.base_model}  {brief}")


@models_app.command("promote")
def models_promote(name: str) -> None:
    """Make NAME the model the stream uses."""
    from classifier.registry import Registry, RegistryError
    from finpulse.cli import get_settings

    try:
        info = Registry.from_settings(get_settings()).promote(name)
    except RegistryError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"promoted {info.name} ({info.model_version})")


@models_app.command("corrections")
def models_corrections(
    replay: Annotated[
        str, typer.Option(help="Re-label the corrected documents with: quick (linear models, cheap), all, none.")
    ] = "quick",
    limit: Annotated[int, typer.Option(min=1, help="At most this many corrected documents are replayed.")] = 2000,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Per model: how many analysts' corrections it disagreed with (and how each registry model labels them)."""
    from classifier import corrections as corrmod
    from finpulse.cli import get_settings

    settings = get_settings()
    if replay not in corrmod.REPLAY_KINDS:
        raise _fail(f"--replay must be one of {', '.join(corrmod.REPLAY_KINDS)}, not {replay!r}")
    store, note = corrmod.open_store(settings, training=False)
    if store is None:
        raise _fail(f"{note}; start the stack (`finpulse up`) or set FINPULSE_CLICKHOUSE_URL", 1)
    try:
        corrections = store.latest()
    except Exception as exc:  # e.g. the corrections migration not applied: one line, not a traceback
        raise _fail(f"reading corrections failed: {type(exc).__name__}: {exc}", 1) from exc
    report = corrmod.model_report(settings, corrections, replay=replay, limit=limit)
    typer.echo(json.dumps(report) if as_json else corrmod.format_report(report))


@models_app.command("validation-data")
def models_validation_data(
    name: str,
    out: Annotated[Path, typer.Option(help="Folder for the CSVs (keep it outside the repository).")],
    data_dir: Annotated[Path | None, typer.Option(help="Folder with the built-in sets.")] = None,
) -> None:
    """Re-create NAME's validation split as CSVs (checked against the model's data fingerprint)."""
    from classifier.data import DataError
    from classifier.registry import Registry, RegistryError
    from classifier.validation import export_validation
    from finpulse.cli import get_settings

    settings = get_settings()
    try:
        path = Registry.from_settings(settings).resolve(name)
        written = export_validation(path, out, data_dir or settings.shared_data_dir)
    except (DataError, RegistryError) as exc:
        raise _fail(str(exc)) from exc
    for key, file in written.items():
        typer.echo(f"{key}: {file}")


def bench_classifier_command(
    model: Annotated[str | None, typer.Option("--model", "-m", help="Default: the promoted model.")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    docs: Annotated[int, typer.Option(help="How many real texts to classify.")] = 2000,
    lang: Annotated[
        str, typer.Option(help="Language of the timed texts: en (TFNS, PhraseBank) or zh (FinFE, FinNL).")
    ] = "en",
    repeats: Annotated[int, typer.Option(help="Throughput runs; the best counts.")] = 1,
    int8: Annotated[bool | None, typer.Option("--int8/--no-int8", help="Dynamic int8 on CPU.")] = None,
    precision: Annotated[str | None, typer.Option(help="Engine precision: auto, fp32, bf16, fp16, int8.")] = None,
    backend: Annotated[str | None, typer.Option(help="Engine backend: auto, torch, onnx.")] = None,
    data: Annotated[
        list[Path] | None, typer.Option("--data", help="Labeled sentiment file (text,label) for accuracy; repeat.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """docs/s, p50/p95 batch latency and accuracy: the engine vs transformers.pipeline(batch_size=64) vs the same
    int8 ONNX model in a plain ONNX Runtime session; same weights, texts and threads."""
    from classifier.bench import bench_texts, run_bench
    from classifier.data import DataError
    from classifier.registry import Registry, RegistryError
    from finpulse.cli import get_settings

    settings = get_settings()
    if device not in ("cpu", "cuda"):
        raise _fail("--device must be cpu or cuda")
    try:
        path = Registry.from_settings(settings).resolve(model)
        for file in data or []:
            if not file.is_file():
                raise DataError(f"--data {file}: no such file")
        texts = bench_texts(settings.shared_data_dir, docs, lang)
        options = {
            "int8": settings.model_int8 if int8 is None else int8,
            "precision": precision or settings.model_precision,
            "backend": backend or settings.model_backend,
            "guard_data_root": settings.shared_data_dir,
            "cache_root": settings.artifact_cache_dir,
        }
        result = run_bench(
            path,
            texts,
            device=device,
            repeats=repeats,
            threads=settings.model_threads,
            engine_options=options,
            labeled={f.stem: f for f in data or []},
            progress=lambda msg: typer.echo(msg, err=True),
        )
    except (DataError, RegistryError, RuntimeError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    if as_json:
        typer.echo(json.dumps(result))
        return
    for key, value in result.items():
        typer.echo(f"{key:>24}: {value}")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.command("evaluate")(evaluate_command)
    app.add_typer(models_app, name="models")
    bench_app.command("classifier")(bench_classifier_command)
