"""FinPulse: warehouse."""
