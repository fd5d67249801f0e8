"""FinPulse: alerts."""
