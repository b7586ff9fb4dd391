"""JobStore on DynamoDB: one item per job, conditional writes on a ``version`` attribute.

Table: partition key ``job_id`` (S). GSI ``by_user``: partition ``user_id`` (S), sort ``created_key``
(S, ``"{created_at iso}#{job_id}"``): a total order, so "strictly after (created_at, job_id)" is one
key condition and pages never skip or repeat jobs created in the same microsecond. The rules
(transitions, versions, page tokens) live in the JobStore base; this class implements primitives.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from musicvid_core.adapters.aws.errors import error_code, from_aws
from musicvid_core.domain.errors import ConcurrentUpdate
from musicvid_core.domain.job import Job, Status
from musicvid_core.ports import JobStore

USER_INDEX = "by_user"


def _created_key(created_at_iso: str, job_id: str) -> str:
    return f"{created_at_iso}#{job_id}"


class DynamoDBJobStore(JobStore):
    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    @staticmethod
    def _item(job: Job) -> dict:
        created = job.created_at.isoformat()
        return {"job_id": {"S": job.job_id}, "user_id": {"S": job.user_id},
                "created_key": {"S": _created_key(created, job.job_id)}, "status": {"S": job.status.value},
                "version": {"N": str(job.version)}, "body": {"S": job.model_dump_json()}}

    def _insert(self, job: Job) -> None:
        try:
            self.client.put_item(TableName=self.table, Item=self._item(job),
                                 ConditionExpression="attribute_not_exists(job_id)")
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise ConcurrentUpdate(f"job {job.job_id} already exists") from None
            raise from_aws(exc, f"DynamoDB PutItem {job.job_id}") from exc

    def _get(self, job_id: str) -> Job | None:
        try:
            out = self.client.get_item(TableName=self.table, Key={"job_id": {"S": job_id}}, ConsistentRead=True)
        except Exception as exc:
            raise from_aws(exc, f"DynamoDB GetItem {job_id}") from exc
        item = out.get("Item")
        return Job.model_validate_json(item["body"]["S"]) if item else None

    def _replace_if(self, job: Job, expected_version: int) -> bool:
        try:
            self.client.put_item(TableName=self.table, Item=self._item(job),
                                 ConditionExpression="attribute_exists(job_id) AND #v = :v",
                                 ExpressionAttributeNames={"#v": "version"},
                                 ExpressionAttributeValues={":v": {"N": str(expected_version)}})
            return True
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise from_aws(exc, f"DynamoDB PutItem {job.job_id}") from exc

    def _by_user(self, user_id: str, limit: int, after: tuple[str, str] | None) -> list[Job]:
        cond, values = "user_id = :u", {":u": {"S": user_id}}
        if after:
            cond += " AND created_key < :k"
            values[":k"] = {"S": _created_key(*after)}
        jobs: list[Job] = []
        kwargs: dict = {"TableName": self.table, "IndexName": USER_INDEX, "KeyConditionExpression": cond,
                        "ExpressionAttributeValues": values, "ScanIndexForward": False}
        try:
            while len(jobs) < limit:
                out = self.client.query(Limit=limit - len(jobs), **kwargs)
                jobs += [Job.model_validate_json(i["body"]["S"]) for i in out.get("Items", [])]
                if "LastEvaluatedKey" not in out:
                    break
                kwargs["ExclusiveStartKey"] = out["LastEvaluatedKey"]
        except Exception as exc:
            raise from_aws(exc, f"DynamoDB Query {USER_INDEX}") from exc
        return jobs

    def _by_status(self, statuses: Iterable[Status]) -> list[Job]:
        # A scan: only crash recovery asks this, rarely; the table is keyed for the hot paths.
        vals = {f":s{i}": {"S": s.value} for i, s in enumerate(statuses)}
        kwargs: dict = {"TableName": self.table, "FilterExpression": f"#st IN ({', '.join(vals)})",
                        "ExpressionAttributeNames": {"#st": "status"}, "ExpressionAttributeValues": vals}
        jobs: list[Job] = []
        try:
            for page in self.client.get_paginator("scan").paginate(**kwargs):
                jobs += [Job.model_validate_json(i["body"]["S"]) for i in page.get("Items", [])]
        except Exception as exc:
            raise from_aws(exc, "DynamoDB Scan") from exc
        return sorted(jobs, key=lambda j: j.created_at)


def create_table(client: Any, table: str) -> None:
    """Create the job table and its GSI (tests and local development; infra/ does it on AWS)."""
    client.create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("job_id", "user_id", "created_key")],
        KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[{"IndexName": USER_INDEX, "Projection": {"ProjectionType": "ALL"},
                                 "KeySchema": [{"AttributeName": "user_id", "KeyType": "HASH"},
                                               {"AttributeName": "created_key", "KeyType": "RANGE"}]}])
