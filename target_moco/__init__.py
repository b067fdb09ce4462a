"""target-moco: writes CRM contacts, notes, tasks and appointments into MOCO (people, comments)."""
