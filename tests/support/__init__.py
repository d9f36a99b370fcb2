"""Helpers shared by the tests and by the fixture scripts (``scripts/make_fixtures.py`` and
``scripts/make_triage_captures.py`` import them after putting the repository root on
``sys.path``): real child processes, a real tcpdump, self-signed test identities."""
