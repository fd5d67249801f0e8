"""The local stack: Kafka broker, ClickHouse endpoint and the supervisor that runs every service."""
