"""HighLevel's published webhook public keys: the defaults of the listener's key settings.

Both are public (every Marketplace app verifies with the same keys), so they may live in code;
the settings ``contacts_public_key`` and ``contacts_legacy_public_key`` replace them when
HighLevel rotates a key (it announces rotations by e-mail and on its developer Slack).
"""

from __future__ import annotations

#: Ed25519, header ``x-ghl-signature``. Not in HighLevel's docs repository: taken from its Webhook
#: Integration Guide as quoted identically by many independent integrations (see
#: reference/reverse-and-realtime.md §5.2); it loads as a valid Ed25519 key.
CONTACTS_ED25519_PUBLIC_KEY = """-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAi2HR1srL4o18O8BRa7gVJY7G7bupbN3H9AwJrHCDiOg=
-----END PUBLIC KEY-----
"""

#: RSA 4096, header ``x-wh-signature`` (legacy, being retired by HighLevel). Copied verbatim from
#: GoHighLevel/highlevel-api-docs ``docs/oauth/WebhookAuthentication.md``; SHA-256 of its DER
#: form: 2f62045d413b1b7747e26770ce7f57840cbf86288cd20ceb90d299a62501fd25.
CONTACTS_LEGACY_RSA_PUBLIC_KEY = """-----BEGIN PUBLIC KEY-----
MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEAokvo/r9tVgcfZ5DysOSC
Frm602qYV0MaAiNnX9O8KxMbiyRKWeL9JpCpVpt4XHIcBOK4u3cLSqJGOLaPuXw6
dO0t6Q/ZVdAV5Phz+ZtzPL16iCGeK9po6D6JHBpbi989mmzMryUnQJezlYJ3DVfB
csedpinheNnyYeFXolrJvcsjDtfAeRx5ByHQmTnSdFUzuAnC9/GepgLT9SM4nCpv
uxmZMxrJt5Rw+VUaQ9B8JSvbMPpez4peKaJPZHBbU3OdeCVx5klVXXZQGNHOs8gF
3kvoV5rTnXV0IknLBXlcKKAQLZcY/Q9rG6Ifi9c+5vqlvHPCUJFT5XUGG5RKgOKU
J062fRtN+rLYZUV+BjafxQauvC8wSWeYja63VSUruvmNj8xkx2zE/Juc+yjLjTXp
IocmaiFeAO6fUtNjDeFVkhf5LNb59vECyrHD2SQIrhgXpO4Q3dVNA5rw576PwTzN
h/AMfHKIjE4xQA1SZuYJmNnmVZLIZBlQAF9Ntd03rfadZ+yDiOXCCs9FkHibELhC
HULgCsnuDJHcrGNd5/Ddm5hxGQ0ASitgHeMZ0kcIOwKDOzOU53lDza6/Y09T7sYJ
PQe7z0cvj7aE4B+Ax1ZoZGPzpJlZtGXCsu9aTEGEnKzmsFqwcSsnw3JB31IGKAyk
T1hhTiaCeIY/OwwwNUY2yvcCAwEAAQ==
-----END PUBLIC KEY-----
"""
