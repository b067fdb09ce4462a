"""Local emulators of the MOCO API and the Contacts API, for tests, the demo and dry runs.

Development tools of this repository, run from its root (``python -m sandbox moco|contacts``);
they are not part of the installed wheel.
"""
