"""FinPulse's core: the settings, the contracts between the parts, the `finpulse` command line and the local stack
(Kafka, ClickHouse and the supervisor) that runs every part."""
