"""FinPulse: ingest."""
