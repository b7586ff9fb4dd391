"""AWS adapters: the ports on AWS services.

- ``s3``: ObjectStore on S3 (``s3://BUCKET/KEY``, SSE AES256); ``links``: presigned POST/GET links.
- ``dynamodb``: JobStore on DynamoDB (conditional writes on a version; GSI by_user, newest first).
- ``stepfunctions``: Launcher: StartExecution of the workflow definition (execution name
  ``{job_id}-{attempt}``).
- ``errors``: the one mapping of botocore errors onto the error tree (throttling and
  transient faults retryable, missing, access denied).
- ``client``: builds the boto3 clients (bootstrap, and model adapters given none).

Each adapter takes its boto3 client; none is created at import time, and boto3 itself is only imported
by whoever builds the clients. The Bedrock and SageMaker adapters are model adapters: adapters/model.
"""
