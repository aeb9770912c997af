"""Notion: personas kept in a Notion database (notion-client, imported only when Notion is configured)."""
