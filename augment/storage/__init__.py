"""Storage plumbing shared by sources and sinks: files, S3 (client, listings, limits, URLs), the
SQLite map, JSON from users, folder overlap. It imports no other room."""
