"""Alerts: rules evaluated over the stored documents, alerts with their evidence, and signed webhook deliveries with
retries (`finpulse alerts`)."""
