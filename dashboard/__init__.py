"""FinPulse: dashboard."""
