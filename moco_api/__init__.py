"""The MOCO API (mocoapp.com, API v1), shared by tap-moco (reads) and target-moco (writes).

One home for how to reach an account, its rate limit, its timestamps and its errors.
"""
