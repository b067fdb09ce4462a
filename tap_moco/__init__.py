"""tap-moco: a Singer tap for the MOCO API (contacts, companies, to-dos, comments)."""
