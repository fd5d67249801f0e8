"""Ingest: takes documents from feeds, HTTP APIs, the push endpoint, file replays and the scenario generator,
cleans, masks and deduplicates them, and publishes them to Kafka (`finpulse ingest`)."""
