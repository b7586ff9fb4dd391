"""Adapters: every implementation of every port (ports.py), chosen once by settings in bootstrap.py.

- ``local``: the embedded, offline defaults for one machine (folder object store, SQLite job store,
  leases, signed links, template summary).
- ``aws``: S3, DynamoDB, Step Functions, presigned links, and the one mapping of botocore errors onto
  the error tree.
- ``model``: model-backed planners, summarizers and music generators (Bedrock, SageMaker MusicGen,
  transformers MusicGen).

Adapters take their clients and settings; none creates a client or imports an optional heavy library
(boto3, torch, transformers) at import time. Nothing here imports workflow/ or an entry point.
"""
