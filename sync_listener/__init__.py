"""sync-listener: the webhook receiver of the real-time sync, and its run coordinator.

``POST /webhooks/moco`` and ``POST /webhooks/contacts`` verify a delivery, store it in the
ledger database (table ``webhook_events``, :mod:`sync_ledger.events`) and answer 202; the
coordinator (:mod:`sync_listener.coordinator`) then starts the matching direction's incremental
``meltano run`` after a short quiet time, one run at a time per direction and location. A webhook
is only a hint: the run re-reads the records through the API.
"""
