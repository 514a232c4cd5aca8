"""Writers to the outside world (ClickHouse, Redis, Stellar). None ship yet: see README."""
