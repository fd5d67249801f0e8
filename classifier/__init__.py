"""FinPulse: classifier."""
