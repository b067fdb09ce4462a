"""target-contacts: a Singer target that writes contacts, tasks, notes and tags to the Contacts API."""
