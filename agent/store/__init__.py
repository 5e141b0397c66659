"""Persistence on Peewee: SQLite by default, PostgreSQL by URL; models bound per database, never global."""
