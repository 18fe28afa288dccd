"""The core layer: time (months, windows, microseconds, weekday), arrays (namespace and to-host
dispatch), the confusion-count engine, the registries' names and errors. Imports nothing of rapidseval's."""
