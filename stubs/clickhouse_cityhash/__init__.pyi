"""clickhouse-cityhash: CityHash 1.0.2, the version ClickHouse checksums its native blocks with."""
