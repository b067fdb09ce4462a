"""tap-contacts: a Singer tap for the Contacts API's contacts, tasks, notes and appointments."""
