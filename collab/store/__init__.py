"""Everything that talks to PostgreSQL. Only this package imports asyncpg."""
