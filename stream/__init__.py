"""FinPulse: stream."""
