"""Writers to the outside world: ClickHouse, the Redis mirrors, webhooks, the key store."""
