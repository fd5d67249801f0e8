"""FinPulse: finpulse."""
