"""The HighLevel Contacts API (LeadConnector API v2): every endpoint, auth, limits and errors.

One home for the API, shared by target-contacts (writes) and tap-contacts (reads): one client
(:mod:`contacts_api.client`), one rate limiter per location (:mod:`contacts_api.ratelimit`), one
error vocabulary (:mod:`contacts_api.errors`) and one auth (:mod:`contacts_api.auth`: a Private
Integration Token, or OAuth 2.0 with rotating refresh tokens kept in the ledger's token store).
"""
