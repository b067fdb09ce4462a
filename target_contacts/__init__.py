"""target-contacts: a Singer target writing contacts, tasks, notes and tags to the Contacts API."""
