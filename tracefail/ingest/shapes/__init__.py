"""The generic structural reader: traces found by their shape anywhere in a JSON document.

No adapter knows every exporter, but most exports hold one of three shapes somewhere inside
wrappers: span collections (objects with trace / span / parent ids), message lists (role or
sender plus content) and event streams (actions and observations with a source). `find` locates
them, `spans` / `messages` / `events` map them onto steps through the shared span mapper and
content helpers, and `leftover` puts every string no column took into step or trace metadata,
so nothing textual is dropped. Family adapters (`ingest/families/`) add a name, a detection rule
and only the fixes shape cannot make.
"""
