"""AWS adapters (S3, DynamoDB, Step Functions, Bedrock, SageMaker). Each takes its boto3 client;
none is created at import time, and boto3 itself is only imported by whoever builds the clients."""
