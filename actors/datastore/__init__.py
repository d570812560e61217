"""The application data store the light operations write to (SQL through SQLAlchemy)."""
