"""The stream processor: faust workers that classify raw documents from Kafka in micro-batches and write them to
ClickHouse, the classified topic and the DLQ (`finpulse stream`)."""
